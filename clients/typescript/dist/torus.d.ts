/**
 * The world wraps at its edges (a player leaving at one edge re-enters at the opposite one,
 * as the server's movement does): distances and positions taken on that torus, shared by
 * interpolation and prediction so both take the short way the same way.
 */
/** A difference of coordinates taken the short way around a world of side `size` (0: no wrap). */
export declare function shortWay(delta: number, size: number): number;
/** `coordinate` brought into `[0, size)` (0: no wrap). */
export declare function wrapCoordinate(coordinate: number, size: number): number;
