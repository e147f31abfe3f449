//! Kernel receive timestamps: when a frame's bytes reached the bot's socket, not when the
//! load generator got round to reading them. With 2,000 bots on one thread, the last frame
//! of a tick's burst is read tens of milliseconds after it arrived; timing acks at read time
//! would measure the load generator's own queue instead of the server. `SO_TIMESTAMPNS`
//! makes `recvmsg` report the arrival time (CLOCK_REALTIME) of the data it returns. The
//! kernel enables stamping globally through deferred work, so the first frames of a run may
//! come unstamped; those fall back to the read time (warm-up absorbs them).

use std::io;
use std::os::fd::RawFd;

/// `SO_TIMESTAMPNS` (the `_OLD` variant with a `timespec` payload) on Linux.
const SO_TIMESTAMPNS: libc::c_int = 35;

/// Asks the kernel to timestamp data arriving on `fd`.
pub fn enable(fd: RawFd) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: setsockopt reads `size_of::<c_int>()` bytes from a live local.
    let result = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            SO_TIMESTAMPNS,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Nanoseconds since the Unix epoch on CLOCK_REALTIME, the clock of the timestamps.
pub fn realtime_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// Reads into `buf` like `read`, also returning the arrival time of the data (nanoseconds,
/// CLOCK_REALTIME) when the kernel attached one.
pub fn recv(fd: RawFd, buf: &mut [u8]) -> io::Result<(usize, Option<i64>)> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut control = [0u64; 8]; // 64 bytes, aligned for cmsghdr
    // SAFETY: zeroed msghdr is a valid empty header; fields are set below.
    let mut header: libc::msghdr = unsafe { std::mem::zeroed() };
    header.msg_iov = &mut iov;
    header.msg_iovlen = 1;
    header.msg_control = control.as_mut_ptr().cast();
    header.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: the iovec and control buffer outlive the call and their lengths are correct.
    let n = unsafe { libc::recvmsg(fd, &mut header, libc::MSG_DONTWAIT) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut arrival = None;
    // SAFETY: the CMSG macros walk the control buffer the kernel filled, within
    // msg_controllen; the payload of an SCM_TIMESTAMPNS message is a timespec.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&header);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == SO_TIMESTAMPNS {
                let stamp: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                arrival = Some(stamp.tv_sec * 1_000_000_000 + stamp.tv_nsec);
            }
            cmsg = libc::CMSG_NXTHDR(&header, cmsg);
        }
    }
    Ok((n as usize, arrival))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsRawFd;

    #[test]
    fn loopback_data_carries_an_arrival_time_between_send_and_read() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut sender = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (receiver, _) = listener.accept().unwrap();
        enable(receiver.as_raw_fd()).unwrap();
        // The kernel turns timestamping on globally through deferred work, so the first
        // segments after the first `enable` on the machine may arrive unstamped.
        for _ in 0..50 {
            let before = realtime_ns();
            sender.write_all(b"hello").unwrap();
            std::thread::sleep(std::time::Duration::from_millis(20));
            let mut buf = [0u8; 16];
            let (n, arrival) = recv(receiver.as_raw_fd(), &mut buf).unwrap();
            let after = realtime_ns();
            assert_eq!(&buf[..n], b"hello");
            if let Some(arrival) = arrival {
                assert!(arrival >= before, "not before the send");
                assert!(
                    arrival <= after - 15_000_000,
                    "before the 20 ms sleep ended"
                );
                return;
            }
        }
        panic!("no segment was ever timestamped");
    }
}
