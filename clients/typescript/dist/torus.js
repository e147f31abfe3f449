/**
 * The world wraps at its edges (a player leaving at one edge re-enters at the opposite one,
 * as the server's movement does): distances and positions taken on that torus, shared by
 * interpolation and prediction so both take the short way the same way.
 */
/** A difference of coordinates taken the short way around a world of side `size` (0: no wrap). */
export function shortWay(delta, size) {
    if (size <= 0)
        return delta;
    if (delta > size / 2)
        return delta - size;
    if (delta < -size / 2)
        return delta + size;
    return delta;
}
/** `coordinate` brought into `[0, size)` (0: no wrap). */
export function wrapCoordinate(coordinate, size) {
    if (size <= 0)
        return coordinate;
    const wrapped = coordinate - Math.floor(coordinate / size) * size;
    return wrapped >= size ? 0 : wrapped;
}
