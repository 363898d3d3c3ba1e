//! The crate's only `unsafe` code: the few Linux calls the standard library does not wrap.
//!
//! - [`Batch`]: UDP datagrams received and sent many per system call (`recvmmsg(2)`,
//!   `sendmmsg(2)`), each with its own peer address and, for a socket bound to a wildcard
//!   address, the local address it arrived at (`IP_PKTINFO` / `IPV6_PKTINFO`), so that an
//!   answer leaves from the address its query was sent to.
//! - [`omit_path_mtu`]: UDP sockets that ignore (possibly spoofed) path MTU information.
//! - [`wait_readable`]: `ppoll(2)` over a few sockets, with a microsecond timeout.
//! - [`clock_ticks`] and [`kill_group`]: `sysconf(_SC_CLK_TCK)` and `kill(-pgid)`.
//!
//! Everything `unsafe` here hands the kernel pointers into memory this module owns and keeps
//! alive for the duration of the call; nothing outlives a call, and the headers that carry the
//! pointers are rebuilt before every call (so moving a [`Batch`] can never leave one dangling).
//! The rest of the crate keeps `unsafe_code` denied.
#![allow(unsafe_code)]

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Duration;

/// Where a datagram arrived, for a socket bound to a wildcard address: the destination
/// address the client used and the interface it came in on. An answer sent with it leaves
/// from that address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Local {
    /// Not known (the socket is bound to one address, so the kernel picks it anyway).
    #[default]
    Unknown,
    V4 {
        addr: Ipv4Addr,
        ifindex: u32,
    },
    V6 {
        addr: Ipv6Addr,
        ifindex: u32,
    },
}

/// Room for one control message carrying an `in6_pktinfo` (the larger of the two), aligned as
/// `cmsghdr` needs.
const CONTROL: usize = 64;

#[repr(C, align(8))]
#[derive(Clone, Copy)]
struct Control([u8; CONTROL]);

/// A batch of up to `capacity` datagrams of up to `size` bytes each, with their peers and
/// local addresses: filled by [`Batch::recv`], or by [`Batch::slot`] + [`Batch::push`] and
/// then sent by [`Batch::send`].
pub struct Batch {
    size: usize,
    /// `capacity × size` bytes, slot `i` at `i × size`.
    bufs: Vec<u8>,
    lens: Vec<usize>,
    truncated: Vec<bool>,
    names: Vec<libc::sockaddr_storage>,
    name_lens: Vec<libc::socklen_t>,
    locals: Vec<Local>,
    controls: Vec<Control>,
    // Rebuilt before every call from the vectors above, which are never resized after `new`.
    iovs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
    count: usize,
    /// Ask for (on receive) and set (on send) the local address of each datagram.
    pktinfo: bool,
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("capacity", &self.lens.len())
            .field("size", &self.size)
            .field("count", &self.count)
            .field("pktinfo", &self.pktinfo)
            .finish()
    }
}

impl Batch {
    /// `pktinfo`: the socket is bound to a wildcard address and had [`enable_pktinfo`] called
    /// on it, so each datagram's local address is received and answers are sent from it.
    pub fn new(capacity: usize, size: usize, pktinfo: bool) -> Batch {
        let capacity = capacity.max(1);
        Batch {
            size,
            // Zeroed memory is mapped lazily: a slot's pages become resident when used.
            bufs: vec![0u8; capacity * size],
            lens: vec![0; capacity],
            truncated: vec![false; capacity],
            // SAFETY: sockaddr_storage is plain integers, for which all-zero is valid.
            names: vec![unsafe { zeroed() }; capacity],
            name_lens: vec![0; capacity],
            locals: vec![Local::Unknown; capacity],
            controls: vec![Control([0; CONTROL]); capacity],
            iovs: vec![libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 }; capacity],
            // SAFETY: mmsghdr is integers and raw pointers, for which all-zero (null) is valid.
            hdrs: vec![unsafe { zeroed() }; capacity],
            count: 0,
            pktinfo,
        }
    }

    pub fn capacity(&self) -> usize {
        self.lens.len()
    }

    /// The datagrams in the batch.
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn is_full(&self) -> bool {
        self.count == self.capacity()
    }

    pub fn clear(&mut self) {
        self.count = 0;
    }

    /// Datagram `i`: its bytes (cut at `size`; see [`Batch::truncated`]).
    pub fn data(&self, i: usize) -> &[u8] {
        &self.bufs[i * self.size..i * self.size + self.lens[i]]
    }

    /// Whether datagram `i` was longer than `size` and so cut.
    pub fn truncated(&self, i: usize) -> bool {
        self.truncated[i]
    }

    /// The peer of datagram `i` (its source when received).
    pub fn peer(&self, i: usize) -> Option<SocketAddr> {
        from_storage(&self.names[i], self.name_lens[i])
    }

    /// Where datagram `i` arrived.
    pub fn local(&self, i: usize) -> Local {
        self.locals[i]
    }

    /// The buffer of the next datagram to send, `size` bytes; `None` when the batch is full.
    /// It becomes part of the batch only with [`Batch::push`].
    pub fn slot(&mut self) -> Option<&mut [u8]> {
        let i = self.count;
        (i < self.capacity()).then(|| &mut self.bufs[i * self.size..(i + 1) * self.size])
    }

    /// Adds the datagram written into [`Batch::slot`]: its first `len` bytes, to `peer`, from
    /// `local`.
    pub fn push(&mut self, len: usize, peer: SocketAddr, local: Local) {
        let i = self.count;
        assert!(i < self.capacity() && len <= self.size, "push past the batch's capacity");
        self.lens[i] = len;
        self.name_lens[i] = to_storage(peer, &mut self.names[i]);
        self.locals[i] = local;
        self.count += 1;
    }

    /// Adds the datagram written into [`Batch::slot`] for a connected socket: no peer is
    /// named, so the kernel uses the connection's (and its cached route).
    pub fn push_connected(&mut self, len: usize) {
        let i = self.count;
        assert!(i < self.capacity() && len <= self.size, "push past the batch's capacity");
        self.lens[i] = len;
        self.name_lens[i] = 0;
        self.locals[i] = Local::Unknown;
        self.count += 1;
    }

    /// Receives the datagrams that have arrived, up to the capacity, replacing the batch.
    /// With `wait`, blocks until the first one arrives (or the socket's read timeout passes:
    /// `WouldBlock`), then takes only what is already there; without, never blocks.
    pub fn recv(&mut self, sock: &UdpSocket, wait: bool) -> io::Result<usize> {
        self.count = 0;
        let n = self.capacity();
        for i in 0..n {
            self.iovs[i] = libc::iovec {
                iov_base: self.bufs[i * self.size..].as_mut_ptr().cast(),
                iov_len: self.size,
            };
            let h = &mut self.hdrs[i];
            h.msg_hdr.msg_name = (&raw mut self.names[i]).cast();
            h.msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_hdr.msg_iov = &raw mut self.iovs[i];
            h.msg_hdr.msg_iovlen = 1;
            if self.pktinfo {
                h.msg_hdr.msg_control = self.controls[i].0.as_mut_ptr().cast();
                h.msg_hdr.msg_controllen = CONTROL as _;
            } else {
                h.msg_hdr.msg_control = std::ptr::null_mut();
                h.msg_hdr.msg_controllen = 0;
            }
            h.msg_hdr.msg_flags = 0;
            h.msg_len = 0;
        }
        let flags = if wait { libc::MSG_WAITFORONE } else { libc::MSG_DONTWAIT };
        // SAFETY: every header points into this batch's own vectors (names, iovecs over
        // `bufs` slots of `size` bytes, controls of CONTROL bytes), all alive and unaliased
        // for the call; the kernel writes at most the lengths given.
        let got = unsafe {
            libc::recvmmsg(
                sock.as_raw_fd(),
                self.hdrs.as_mut_ptr(),
                n as libc::c_uint,
                flags,
                std::ptr::null_mut(),
            )
        };
        if got < 0 {
            return Err(io::Error::last_os_error());
        }
        let got = got as usize;
        for i in 0..got {
            let h = &self.hdrs[i];
            self.lens[i] = (h.msg_len as usize).min(self.size);
            self.truncated[i] = h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
            self.name_lens[i] = h.msg_hdr.msg_namelen;
            self.locals[i] = if self.pktinfo { read_pktinfo(&h.msg_hdr) } else { Local::Unknown };
        }
        self.count = got;
        Ok(got)
    }

    /// Sends every datagram in the batch and empties it. A datagram the kernel refuses (an
    /// unreachable peer, a full buffer on a non-blocking socket) is skipped and the rest are
    /// still sent; returns how many were sent and the last error seen, if any.
    pub fn send(&mut self, sock: &UdpSocket) -> (usize, Option<io::Error>) {
        let n = self.count;
        for i in 0..n {
            self.iovs[i] = libc::iovec {
                iov_base: self.bufs[i * self.size..].as_mut_ptr().cast(),
                iov_len: self.lens[i],
            };
            let h = &mut self.hdrs[i];
            // No name (push_connected): the kernel takes a null name as "the connected peer".
            h.msg_hdr.msg_name = if self.name_lens[i] == 0 {
                std::ptr::null_mut()
            } else {
                (&raw mut self.names[i]).cast()
            };
            h.msg_hdr.msg_namelen = self.name_lens[i];
            h.msg_hdr.msg_iov = &raw mut self.iovs[i];
            h.msg_hdr.msg_iovlen = 1;
            h.msg_hdr.msg_flags = 0;
            let control = self.controls[i].0.as_mut_ptr();
            // SAFETY: `control` is CONTROL bytes this batch owns, aligned for cmsghdr.
            let used = unsafe { write_pktinfo(control, self.locals[i]) };
            if used > 0 {
                h.msg_hdr.msg_control = control.cast();
                h.msg_hdr.msg_controllen = used as _;
            } else {
                h.msg_hdr.msg_control = std::ptr::null_mut();
                h.msg_hdr.msg_controllen = 0;
            }
            h.msg_len = 0;
        }
        let (mut sent, mut at, mut last_error) = (0, 0, None);
        while at < n {
            // SAFETY: headers `at..n` point into this batch's own vectors, alive and
            // unaliased for the call; the kernel only reads them (and writes msg_len).
            let r = unsafe {
                libc::sendmmsg(
                    sock.as_raw_fd(),
                    self.hdrs[at..].as_mut_ptr(),
                    (n - at) as libc::c_uint,
                    0,
                )
            };
            if r < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                // The first datagram of the rest failed: skip it, send the others.
                last_error = Some(e);
                at += 1;
            } else {
                sent += r as usize;
                at += (r as usize).max(1);
            }
        }
        self.count = 0;
        (sent, last_error)
    }
}

/// Asks the kernel to report each datagram's local address on `sock` (`IP_PKTINFO`, or
/// `IPV6_RECVPKTINFO` for an IPv6 socket), for sockets bound to a wildcard address.
pub fn enable_pktinfo(sock: &UdpSocket, v6: bool) -> io::Result<()> {
    match v6 {
        true => set_int(sock, libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO, 1),
        false => set_int(sock, libc::IPPROTO_IP, libc::IP_PKTINFO, 1),
    }
}

/// Makes `sock` ignore path MTU information (`IP_PMTUDISC_OMIT`, or `IPV6_PMTUDISC_OMIT`;
/// Linux 3.15 and later). Its datagrams leave without DF and are sized by the interface's
/// MTU only, and ICMP "fragmentation needed" messages for them are ignored: a spoofed one can
/// then no longer make the kernel cut later answers into small, spoofable fragments, the
/// attack on DNS over UDP that fragmentation invites. The answers are kept within the
/// advertised UDP payload size anyway (1232 bytes by default), so nothing is fragmented
/// unless an interface's MTU is smaller. It also spares each send the route's MTU lookups.
/// Falls back to `IP_PMTUDISC_DONT` (DF clear, path MTU still tracked) on older kernels.
pub fn omit_path_mtu(sock: &UdpSocket, v6: bool) -> io::Result<()> {
    let (level, name) = mtu_discover(v6);
    let (omit, dont) = match v6 {
        true => (libc::IPV6_PMTUDISC_OMIT, libc::IPV6_PMTUDISC_DONT),
        false => (libc::IP_PMTUDISC_OMIT, libc::IP_PMTUDISC_DONT),
    };
    set_int(sock, level, name, omit).or_else(|_| set_int(sock, level, name, dont))
}

/// The path MTU discovery mode of `sock` (`IP_MTU_DISCOVER` / `IPV6_MTU_DISCOVER`).
pub fn path_mtu_mode(sock: &UdpSocket, v6: bool) -> io::Result<libc::c_int> {
    let (level, name) = mtu_discover(v6);
    let mut value: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `value` and the length into `len`,
    // both living for the call.
    let r = unsafe {
        libc::getsockopt(sock.as_raw_fd(), level, name, (&raw mut value).cast(), &raw mut len)
    };
    if r == 0 { Ok(value) } else { Err(io::Error::last_os_error()) }
}

/// The socket option that sets the path MTU discovery mode, per family.
fn mtu_discover(v6: bool) -> (libc::c_int, libc::c_int) {
    match v6 {
        true => (libc::IPPROTO_IPV6, libc::IPV6_MTU_DISCOVER),
        false => (libc::IPPROTO_IP, libc::IP_MTU_DISCOVER),
    }
}

fn set_int(
    sock: &UdpSocket,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: setsockopt reads size_of::<c_int>() bytes from `value`, which lives for the call.
    let r = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            level,
            name,
            (&raw const value).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// The local address in a received message's control data, if the kernel put one there.
fn read_pktinfo(msg: &libc::msghdr) -> Local {
    // SAFETY: the CMSG_* macros walk `msg`'s control buffer within msg_controllen, which the
    // kernel set to what it wrote; the payload is read unaligned, as it may be packed.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(msg);
        while !c.is_null() {
            let data = libc::CMSG_DATA(c);
            match ((*c).cmsg_level, (*c).cmsg_type) {
                (libc::IPPROTO_IP, libc::IP_PKTINFO) => {
                    let p = std::ptr::read_unaligned(data.cast::<libc::in_pktinfo>());
                    return Local::V4 {
                        addr: Ipv4Addr::from(u32::from_be(p.ipi_addr.s_addr)),
                        ifindex: p.ipi_ifindex as u32,
                    };
                }
                (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO) => {
                    let p = std::ptr::read_unaligned(data.cast::<libc::in6_pktinfo>());
                    return Local::V6 {
                        addr: Ipv6Addr::from(p.ipi6_addr.s6_addr),
                        ifindex: p.ipi6_ifindex,
                    };
                }
                _ => {}
            }
            c = libc::CMSG_NXTHDR(msg, c);
        }
    }
    Local::Unknown
}

/// Writes the control message that sends a datagram from `local` into `buf` (CONTROL bytes,
/// aligned for `cmsghdr`); returns its length, 0 for [`Local::Unknown`].
///
/// # Safety
/// `buf` must point to CONTROL writable bytes aligned for `cmsghdr`.
unsafe fn write_pktinfo(buf: *mut u8, local: Local) -> usize {
    let (level, kind, len) = match local {
        Local::Unknown => return 0,
        Local::V4 { .. } => (libc::IPPROTO_IP, libc::IP_PKTINFO, size_of::<libc::in_pktinfo>()),
        Local::V6 { .. } => {
            (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO, size_of::<libc::in6_pktinfo>())
        }
    };
    // SAFETY: CMSG_SPACE of either pktinfo is at most 40 bytes, within CONTROL; the header is
    // written at the aligned start, the payload at CMSG_DATA, inside the same space.
    unsafe {
        let space = libc::CMSG_SPACE(len as u32) as usize;
        debug_assert!(space <= CONTROL);
        std::ptr::write_bytes(buf, 0, space);
        let c = buf.cast::<libc::cmsghdr>();
        (*c).cmsg_level = level;
        (*c).cmsg_type = kind;
        (*c).cmsg_len = libc::CMSG_LEN(len as u32) as _;
        let data = libc::CMSG_DATA(c);
        match local {
            Local::V4 { addr, .. } => {
                // The source address only: with ifindex 0 the kernel routes as usual.
                let p = libc::in_pktinfo {
                    ipi_ifindex: 0,
                    ipi_spec_dst: libc::in_addr { s_addr: u32::from(addr).to_be() },
                    ipi_addr: libc::in_addr { s_addr: 0 },
                };
                std::ptr::write_unaligned(data.cast::<libc::in_pktinfo>(), p);
            }
            Local::V6 { addr, ifindex } => {
                // The interface too: a link-local address means something only on its link.
                let p = libc::in6_pktinfo {
                    ipi6_addr: libc::in6_addr { s6_addr: addr.octets() },
                    ipi6_ifindex: ifindex,
                };
                std::ptr::write_unaligned(data.cast::<libc::in6_pktinfo>(), p);
            }
            Local::Unknown => {}
        }
        space
    }
}

fn from_storage(s: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    let len = len as usize;
    match s.ss_family as libc::c_int {
        libc::AF_INET if len >= size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family says the storage holds a sockaddr_in, which it is large and
            // aligned enough for.
            let a = unsafe { &*(s as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 if len >= size_of::<libc::sockaddr_in6>() => {
            // SAFETY: as above, for sockaddr_in6.
            let a = unsafe { &*(s as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(a.sin6_addr.s6_addr),
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

fn to_storage(addr: SocketAddr, s: &mut libc::sockaddr_storage) -> libc::socklen_t {
    match addr {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_storage is large and aligned enough for a sockaddr_in.
            let out =
                unsafe { &mut *(s as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            out.sin_family = libc::AF_INET as libc::sa_family_t;
            out.sin_port = a.port().to_be();
            out.sin_addr = libc::in_addr { s_addr: u32::from(*a.ip()).to_be() };
            out.sin_zero = [0; 8];
            size_of::<libc::sockaddr_in>() as libc::socklen_t
        }
        SocketAddr::V6(a) => {
            // SAFETY: as above, for sockaddr_in6.
            let out =
                unsafe { &mut *(s as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            out.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            out.sin6_port = a.port().to_be();
            out.sin6_flowinfo = a.flowinfo();
            out.sin6_addr = libc::in6_addr { s6_addr: a.ip().octets() };
            out.sin6_scope_id = a.scope_id();
            size_of::<libc::sockaddr_in6>() as libc::socklen_t
        }
    }
}

/// Waits until one of `fds` is readable (or has an error or hang-up to report), or `timeout`
/// passes; returns how many are ready (0 on timeout). Microsecond precision (`ppoll(2)`),
/// which a paced sender needs: `poll(2)` counts whole milliseconds.
pub fn wait_readable(fds: &[BorrowedFd<'_>], timeout: Duration) -> io::Result<usize> {
    let mut polls: Vec<libc::pollfd> = fds
        .iter()
        .map(|fd| libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 })
        .collect();
    let ts = libc::timespec {
        tv_sec: timeout.as_secs().min(i32::MAX as u64) as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `polls` holds polls.len() pollfd structures and `ts` one timespec, both alive
    // for the call; no signal mask is passed.
    let r = unsafe {
        libc::ppoll(polls.as_mut_ptr(), polls.len() as libc::nfds_t, &ts, std::ptr::null())
    };
    match r {
        r if r >= 0 => Ok(r as usize),
        _ => {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted { Ok(0) } else { Err(e) }
        }
    }
}

/// Clock ticks per second, for `/proc`'s CPU times.
pub fn clock_ticks() -> f64 {
    // SAFETY: sysconf(3) reads a configuration value; no memory of ours is involved.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// Kills every process of group `pgid` with SIGKILL. Never our own group or init's (`pgid`
/// ≤ 1 does nothing).
pub fn kill_group(pgid: u32) {
    let Ok(pgid) = i32::try_from(pgid) else { return };
    if pgid <= 1 {
        return;
    }
    // SAFETY: kill(2) takes plain integers and touches no memory of ours; a negative pid names
    // the process group.
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(addr: &str) -> (UdpSocket, UdpSocket) {
        let a = UdpSocket::bind(addr).unwrap();
        let b = UdpSocket::bind(addr).unwrap();
        a.set_read_timeout(Some(std::time::Duration::from_secs(2))).unwrap();
        b.set_read_timeout(Some(std::time::Duration::from_secs(2))).unwrap();
        (a, b)
    }

    #[test]
    fn a_batch_goes_out_in_one_call_and_comes_back_with_its_peers() {
        for family in ["127.0.0.1:0", "[::1]:0"] {
            let Ok(probe) = UdpSocket::bind(family) else { continue }; // no IPv6 here
            drop(probe);
            let (a, b) = pair(family);
            let to = b.local_addr().unwrap();
            let mut tx = Batch::new(8, 512, false);
            for i in 0..5u8 {
                let s = tx.slot().unwrap();
                s[..3].copy_from_slice(&[i, i, i]);
                tx.push(3, to, Local::Unknown);
            }
            assert_eq!(tx.send(&a).0, 5);
            assert!(tx.is_empty());
            let mut rx = Batch::new(8, 512, false);
            let mut got = Vec::new();
            while got.len() < 5 {
                let n = rx.recv(&b, true).unwrap();
                for i in 0..n {
                    assert_eq!(rx.peer(i), Some(a.local_addr().unwrap()));
                    assert!(!rx.truncated(i));
                    got.push(rx.data(i).to_vec());
                }
            }
            let want: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i, i, i]).collect();
            assert_eq!(got, want, "{family}");
        }
    }

    #[test]
    fn a_long_datagram_is_cut_and_marked() {
        let (a, b) = pair("127.0.0.1:0");
        a.send_to(&[7u8; 100], b.local_addr().unwrap()).unwrap();
        let mut rx = Batch::new(2, 40, false);
        assert_eq!(rx.recv(&b, true).unwrap(), 1);
        assert_eq!(rx.data(0), &[7u8; 40][..]);
        assert!(rx.truncated(0));
    }

    #[test]
    fn a_connected_socket_sends_without_naming_its_peer() {
        let (a, b) = pair("127.0.0.1:0");
        a.connect(b.local_addr().unwrap()).unwrap();
        let mut tx = Batch::new(4, 64, false);
        for i in 0..3u8 {
            tx.slot().unwrap()[0] = i;
            tx.push_connected(1);
        }
        assert_eq!(tx.send(&a).0, 3);
        let mut rx = Batch::new(4, 64, false);
        let mut got = Vec::new();
        while got.len() < 3 {
            let n = rx.recv(&b, true).unwrap();
            got.extend((0..n).map(|i| (rx.data(i)[0], rx.peer(i))));
        }
        let from = Some(a.local_addr().unwrap());
        assert_eq!(got, vec![(0, from), (1, from), (2, from)]);
    }

    #[test]
    fn wait_readable_sees_the_socket_that_has_data_and_times_out_otherwise() {
        use std::os::fd::AsFd;
        let (a, b) = pair("127.0.0.1:0");
        let (c, _d) = pair("127.0.0.1:0");
        let fds = [b.as_fd(), c.as_fd()];
        assert_eq!(wait_readable(&fds, Duration::from_micros(200)).unwrap(), 0);
        a.send_to(b"x", b.local_addr().unwrap()).unwrap();
        assert_eq!(wait_readable(&fds, Duration::from_secs(2)).unwrap(), 1);
    }

    #[test]
    fn nothing_waiting_is_would_block_without_wait() {
        let (_a, b) = pair("127.0.0.1:0");
        let mut rx = Batch::new(2, 40, false);
        let e = rx.recv(&b, false).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        assert!(rx.is_empty());
    }

    /// Sends "ping" from `client` to `to`, where `server` (a wildcard socket with pktinfo on)
    /// receives it and answers "pong" from the local address it learnt; returns that address
    /// and the source the client saw the answer come from.
    fn ping_pong(server: &UdpSocket, client: &UdpSocket, to: SocketAddr) -> (Local, SocketAddr) {
        client.send_to(b"ping", to).unwrap();
        let mut rx = Batch::new(4, 64, true);
        assert_eq!(rx.recv(server, true).unwrap(), 1);
        let mut tx = Batch::new(4, 64, true);
        tx.slot().unwrap()[..4].copy_from_slice(b"pong");
        tx.push(4, rx.peer(0).unwrap(), rx.local(0));
        assert_eq!(tx.send(server).0, 1);
        let mut buf = [0u8; 16];
        let (n, from) = client.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"pong");
        (rx.local(0), from)
    }

    fn timed(s: UdpSocket) -> UdpSocket {
        s.set_read_timeout(Some(std::time::Duration::from_secs(2))).unwrap();
        s
    }

    #[test]
    fn a_wildcard_socket_learns_the_address_it_was_sent_to_and_answers_from_it() {
        // All of 127/8 is local: a query sent to 127.0.0.2 must be answered from 127.0.0.2,
        // not from 127.0.0.1 (the address the kernel would pick for the reply's route).
        let server = timed(UdpSocket::bind("0.0.0.0:0").unwrap());
        enable_pktinfo(&server, false).unwrap();
        let port = server.local_addr().unwrap().port();
        let client = timed(UdpSocket::bind("127.0.0.1:0").unwrap());
        for dst in ["127.0.0.2", "127.0.0.3"] {
            let to = SocketAddr::from((dst.parse::<Ipv4Addr>().unwrap(), port));
            let (local, from) = ping_pong(&server, &client, to);
            let Local::V4 { addr, .. } = local else { panic!("{local:?}") };
            assert_eq!((std::net::IpAddr::V4(addr), from), (to.ip(), to));
        }
    }

    #[test]
    fn an_ipv6_wildcard_socket_reports_and_answers_from_its_local_address() {
        let Ok(server) = UdpSocket::bind("[::]:0") else { return }; // no IPv6 here
        let Ok(client) = UdpSocket::bind("[::1]:0") else { return };
        let (server, client) = (timed(server), timed(client));
        enable_pktinfo(&server, true).unwrap();
        let to = SocketAddr::from((Ipv6Addr::LOCALHOST, server.local_addr().unwrap().port()));
        let (local, from) = ping_pong(&server, &client, to);
        let Local::V6 { addr, ifindex } = local else { panic!("{local:?}") };
        assert_eq!((addr, from.ip()), (Ipv6Addr::LOCALHOST, to.ip()));
        assert!(ifindex > 0);
    }
}
