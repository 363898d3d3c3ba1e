//! SPEC §3 behaviour, checked over UDP and TCP against the shipped demo zone: each case is a
//! query and the whole expected answer.

use crate::harness::*;

const SOA: &str = "ns: app.example.com. 60 SOA ns1.app.example.com. hostmaster.app.example.com. 2026112201 3600 600 1209600 60";

/// (name, type, expected answer without the `edns:` line). Every query carries EDNS.
fn cases() -> Vec<(&'static str, &'static str, String)> {
    vec![
        ("api.app.example.com.", "A", "NOERROR aa\nan: api.app.example.com. 300 A 192.0.2.10".into()),
        ("api.app.example.com.", "AAAA", "NOERROR aa\nan: api.app.example.com. 300 AAAA 2001:db8::10".into()),
        // NODATA: the name exists, the type does not.
        ("api.app.example.com.", "MX", format!("NOERROR aa\n{SOA}")),
        // NXDOMAIN, with the SOA and its negative TTL (min of SOA TTL 300 and MINIMUM 60).
        ("nope.app.example.com.", "A", format!("NXDOMAIN aa\n{SOA}")),
        // Not ours.
        ("www.example.org.", "A", "REFUSED ".into()),
        ("example.com.", "A", "REFUSED ".into()),
        // A CNAME chain followed inside the zone.
        (
            "portal.app.example.com.",
            "A",
            "NOERROR aa\nan: portal.app.example.com. 300 CNAME docs.app.example.com.\n\
             an: docs.app.example.com. 3600 CNAME api.app.example.com.\n\
             an: api.app.example.com. 300 A 192.0.2.10"
                .into(),
        ),
        // The chain ends at a name with no data of that type: NODATA after the CNAMEs.
        (
            "portal.app.example.com.",
            "TXT",
            format!(
                "NOERROR aa\nan: portal.app.example.com. 300 CNAME docs.app.example.com.\n\
                 an: docs.app.example.com. 3600 CNAME api.app.example.com.\n{SOA}"
            ),
        ),
        // Asking for the CNAME itself does not follow it.
        ("docs.app.example.com.", "CNAME", "NOERROR aa\nan: docs.app.example.com. 3600 CNAME api.app.example.com.".into()),
        // A CNAME out of the zone is not followed.
        ("status.app.example.com.", "A", "NOERROR aa\nan: status.app.example.com. 300 CNAME status.example.net.".into()),
        // Wildcards (RFC 4592): synthesis at any depth below the source's parent...
        ("x.user.app.example.com.", "A", "NOERROR aa\nan: x.user.app.example.com. 300 A 192.0.2.80".into()),
        ("a.b.user.app.example.com.", "A", "NOERROR aa\nan: a.b.user.app.example.com. 300 A 192.0.2.80".into()),
        ("x.user.app.example.com.", "AAAA", format!("NOERROR aa\n{SOA}")),
        // ...but not for an existing empty non-terminal, nor below it.
        ("team.user.app.example.com.", "A", format!("NOERROR aa\n{SOA}")),
        ("x.team.user.app.example.com.", "A", format!("NXDOMAIN aa\n{SOA}")),
        ("host.team.user.app.example.com.", "A", "NOERROR aa\nan: host.team.user.app.example.com. 300 A 192.0.2.81".into()),
        // A referral to the delegated child: not authoritative, NS in authority, glue.
        (
            "www.eu.app.example.com.",
            "A",
            "NOERROR \nns: eu.app.example.com. 300 NS ns1.eu.app.example.com.\n\
             ns: eu.app.example.com. 300 NS ns2.eu.app.example.com.\n\
             ar: ns1.eu.app.example.com. 300 A 192.0.2.53\n\
             ar: ns2.eu.app.example.com. 300 A 192.0.2.54\n\
             ar: ns2.eu.app.example.com. 300 AAAA 2001:db8::54"
                .into(),
        ),
        // DS at the delegation point is answered by the parent side.
        ("eu.app.example.com.", "DS", format!("NOERROR aa\n{SOA}")),
        // Apex NS with in-zone addresses as additional data.
        (
            "app.example.com.",
            "NS",
            "NOERROR aa\nan: app.example.com. 300 NS ns1.app.example.com.\n\
             an: app.example.com. 300 NS ns2.app.example.com.\n\
             ar: ns1.app.example.com. 300 A 127.0.0.1\n\
             ar: ns2.app.example.com. 300 A 127.0.0.2\n\
             ar: ns2.app.example.com. 300 AAAA ::1"
                .into(),
        ),
        ("app.example.com.", "MX", "NOERROR aa\nan: app.example.com. 300 MX 10 mail.app.example.com.\n\
            ar: mail.app.example.com. 300 A 192.0.2.25\nar: mail.app.example.com. 300 AAAA 2001:db8::25".into()),
        ("app.example.com.", "CAA", "NOERROR aa\nan: app.example.com. 300 CAA 0 issue \"letsencrypt.org\"".into()),
        ("app.example.com.", "TXT", "NOERROR aa\nan: app.example.com. 300 TXT v=spf1 mx -all".into()),
        ("_sip._tcp.app.example.com.", "SRV", "NOERROR aa\nan: _sip._tcp.app.example.com. 300 SRV 10 60 5060 sip.app.example.com.\n\
            ar: sip.app.example.com. 300 A 192.0.2.50".into()),
        // ANY (RFC 8482): one RRset, never the whole node.
        ("app.example.com.", "ANY", "NOERROR aa\nan: app.example.com. 300 A 127.0.0.10".into()),
        ("nope.app.example.com.", "ANY", format!("NXDOMAIN aa\n{SOA}")),
        // Zone transfers are not served.
        ("app.example.com.", "AXFR", "REFUSED ".into()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_over_udp_and_tcp() {
    let srv = TestServer::start().await;
    for (name, rtype, want) in cases() {
        let q = bytes(&query(name, rtype, Some(1232)));
        let want = format!("{want}\nedns: payload=1232 version=0");
        let udp = render(&srv.udp(&q).await.expect("udp answer"));
        assert_eq!(udp, want, "udp {name} {rtype}");
        let tcp = render(&srv.tcp(&q).await.expect("tcp answer"));
        assert_eq!(tcp, want, "tcp {name} {rtype}");
    }
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edns_rules() {
    let srv = TestServer::start().await;
    // No OPT in the query: none in the answer.
    let plain = render(&srv.udp(&bytes(&query("api.app.example.com.", "A", None))).await.unwrap());
    assert_eq!(plain, "NOERROR aa\nan: api.app.example.com. 300 A 192.0.2.10");
    // Unknown options are ignored; the advertised payload is ours (1232), not the client's.
    let q = with_unknown_option(query("api.app.example.com.", "A", Some(4096)));
    let a = render(&srv.udp(&bytes(&q)).await.unwrap());
    assert_eq!(
        a,
        "NOERROR aa\nan: api.app.example.com. 300 A 192.0.2.10\nedns: payload=1232 version=0"
    );
    // EDNS version 1: BADVERS, with an OPT of version 0 and no data.
    let mut q = query("api.app.example.com.", "A", Some(1232));
    q.edns.as_mut().unwrap().set_version(1);
    for a in [srv.udp(&bytes(&q)).await.unwrap(), srv.tcp(&bytes(&q)).await.unwrap()] {
        assert_eq!(render(&a), "BADVERS \nedns: payload=1232 version=0");
    }
    // DO bit is copied (RFC 3225 §3).
    let mut q = query("api.app.example.com.", "A", Some(1232));
    q.edns.as_mut().unwrap().set_dnssec_ok(true);
    let a = hickory_proto::op::Message::from_vec(&srv.udp(&bytes(&q)).await.unwrap()).unwrap();
    assert!(a.edns.unwrap().flags().dnssec_ok);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncation_and_tcp_retry() {
    let srv = TestServer::start().await;
    let count = |a: &[u8]| hickory_proto::op::Message::from_vec(a).unwrap().answers.len();
    let truncated = |a: &[u8]| hickory_proto::op::Message::from_vec(a).unwrap().metadata.truncation;

    // 40 A records (about 650 bytes): over 512 without EDNS, under 1232 with it.
    let q = bytes(&query("a40.big.test.", "A", None));
    let a = srv.udp(&q).await.unwrap();
    assert!(truncated(&a) && count(&a) == 0 && a.len() <= 512, "{}", render(&a));
    let a = srv.udp(&bytes(&query("a40.big.test.", "A", Some(1232)))).await.unwrap();
    assert!(!truncated(&a) && count(&a) == 40);
    // A client advertising less than 512 still gets 512: the apex NS answer with its glue is
    // between 100 and 512 bytes, so it is sent whole to a client that offers 100.
    // hickory raises an advertised payload below 512 to 512 when it encodes, so the OPT
    // record's CLASS (the payload) is set to 100 in the bytes themselves.
    let mut q = bytes(&query("app.example.com.", "NS", Some(1232)));
    let opt = q.len() - 11; // the OPT record, with no options, ends the message
    assert_eq!(q[opt + 1..opt + 3], [0, 41], "the message ends with OPT");
    q[opt + 3..opt + 5].copy_from_slice(&100u16.to_be_bytes());
    let a = srv.udp(&q).await.unwrap();
    assert!(a.len() > 100 && a.len() <= 512, "the fixture must sit between the two: {}", a.len());
    assert!(!truncated(&a), "{}", render(&a));
    assert_eq!(count(&a), 2);

    // 60 long TXT records: over 1232 even when the client offers 4096 (our limit wins).
    let q = bytes(&query("txt.big.test.", "TXT", Some(4096)));
    let a = srv.udp(&q).await.unwrap();
    assert!(truncated(&a) && a.len() <= 1232, "{}", render(&a));
    assert_eq!(render(&a), "NOERROR aa,tc\nedns: payload=1232 version=0");
    // The same query over TCP gets everything.
    let a = srv.tcp(&q).await.unwrap();
    assert!(!truncated(&a) && count(&a) == 60 && a.len() > 1232);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn question_case_is_echoed() {
    let srv = TestServer::start().await;
    // Spell the question name in mixed case on the wire ourselves: hickory's encoder may
    // normalise case, and this test is about the exact bytes.
    let mut q = bytes(&query("api.app.example.com.", "A", None));
    q[12..12 + 21].copy_from_slice(b"\x03aPi\x03APP\x07exAmple\x03COM\x00");
    for a in [srv.udp(&q).await.unwrap(), srv.tcp(&q).await.unwrap()] {
        let m = hickory_proto::op::Message::from_vec(&a).unwrap();
        assert_eq!(m.queries[0].name().to_string(), "aPi.APP.exAmple.COM.");
        // The answer's owner is a pointer to the question, so it carries the same case.
        assert_eq!(m.answers[0].name.to_string(), "aPi.APP.exAmple.COM.");
        // The question section is byte-for-byte the one sent.
        assert_eq!(a[12..12 + q.len() - 12], q[12..]);
    }
    srv.stop().await;
}

/// Hand-made malformed messages, checked byte by byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_messages() {
    let srv = TestServer::start().await;
    let mut good = bytes(&query("api.app.example.com.", "A", None));
    good[2] |= 0x01; // RD
    let header = |id: u16, flags: u16, counts: [u16; 4]| {
        let mut h = id.to_be_bytes().to_vec();
        h.extend_from_slice(&flags.to_be_bytes());
        for c in counts {
            h.extend_from_slice(&c.to_be_bytes());
        }
        h
    };
    // The reply's rcode, whether it carries OPT, and the query flags it echoes; None when
    // nothing came back.
    async fn reply(srv: &TestServer, msg: &[u8], tcp: bool) -> Option<(u8, bool, u16)> {
        let a = if tcp { srv.tcp(msg).await } else { srv.udp(msg).await }?;
        assert!(a.len() >= 12);
        assert_eq!(a[..2], msg[..2], "id is echoed");
        assert_eq!(a[2] & 0x80, 0x80, "QR is set");
        let flags = u16::from_be_bytes([a[2], a[3]]);
        let arcount = u16::from_be_bytes([a[10], a[11]]);
        // The OPT, when there is one, is the last record: root owner, type 41, no options.
        let opt = arcount > 0 && a.len() >= 23 && a[a.len() - 11..a.len() - 8] == [0, 0, 41];
        if opt {
            // An error's OPT carries no extended rcode bits and no options.
            assert_eq!(a[a.len() - 6..a.len() - 4], [0, 0], "extended rcode");
            assert_eq!(a[a.len() - 2..], [0, 0], "RDLENGTH");
        }
        Some((a[3] & 0x0f, opt, flags & 0x7910))
    }
    // The flag bits a reply may echo: opcode, RD, CD.
    const RD: u16 = 0x0100;
    const CD: u16 = 0x0010;
    let with_opt = |mut m: Vec<u8>| {
        m[11] += 1;
        m.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
        m
    };
    let mut two_questions = good.clone();
    two_questions[5] = 2;
    two_questions.extend_from_slice(&good[12..]);
    let mut no_question = header(7, 0x0100, [0, 0, 0, 0]);
    no_question.truncate(12);
    let mut pointer_name = header(8, 0, [1, 0, 0, 0]);
    pointer_name.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1]);
    let mut short_question = good.clone();
    short_question.truncate(good.len() - 3);
    let mut bad_label = header(9, 0, [1, 0, 0, 0]);
    bad_label.extend_from_slice(&[0x40, b'a', 0, 0, 1, 0, 1]);
    let mut two_opts = bytes(&query("api.app.example.com.", "A", Some(1232)));
    let opt = two_opts[two_opts.len() - 11..].to_vec();
    two_opts.extend_from_slice(&opt);
    two_opts[11] = 2;
    let mut opt_overrun = bytes(&query("api.app.example.com.", "A", Some(1232)));
    let l = opt_overrun.len();
    opt_overrun[l - 2..].copy_from_slice(&[0, 8]); // rdlength 8, but nothing follows
    let mut bad_option = bytes(&query("api.app.example.com.", "A", Some(1232)));
    let l = bad_option.len();
    bad_option[l - 2..].copy_from_slice(&[0, 4]);
    bad_option.extend_from_slice(&[0, 10, 0, 9]); // option claims 9 bytes, has 0
    // Client Subnet with a source prefix of /24 but two address bytes.
    let mut bad_ecs = bytes(&query("api.app.example.com.", "A", Some(1232)));
    let l = bad_ecs.len();
    bad_ecs[l - 2..].copy_from_slice(&[0, 10]);
    bad_ecs.extend_from_slice(&[0, 8, 0, 6, 0, 1, 24, 0, 192, 0]);
    let mut notify = good.clone();
    notify[2] = 4 << 3 | 0x01; // opcode NOTIFY, RD
    let mut update = good.clone();
    update[2] = 5 << 3 | 0x01;
    // An unassigned opcode, with RD and CD set: only the opcode and RD come back.
    let mut opcode_3 = good.clone();
    opcode_3[2] = 3 << 3 | 0x01;
    opcode_3[3] = 0x10;
    let mut opt_qtype = good.clone();
    let l = opt_qtype.len();
    opt_qtype[l - 4..l - 2].copy_from_slice(&41u16.to_be_bytes());
    let mut response = good.clone();
    response[2] |= 0x80;
    let mut formerr_rd_cd = header(10, RD | CD, [0, 0, 0, 0]);
    formerr_rd_cd.truncate(12);

    type Case = (&'static str, Vec<u8>, Option<(u8, bool, u16)>);
    let cases: Vec<Case> = vec![
        ("good", good.clone(), Some((0, false, RD))),
        ("good, with OPT", with_opt(good.clone()), Some((0, true, RD))),
        ("two questions", two_questions.clone(), Some((1, false, RD))),
        ("two questions, with OPT", with_opt(two_questions), Some((1, true, RD))),
        ("no question", no_question.clone(), Some((1, false, RD))),
        ("no question, with OPT", with_opt(no_question), Some((1, true, RD))),
        ("FORMERR echoes RD and CD", formerr_rd_cd, Some((1, false, RD | CD))),
        ("compression pointer in question", pointer_name, Some((1, false, 0))),
        ("question cut short", short_question, Some((1, false, RD))),
        ("reserved label type", bad_label, Some((1, false, 0))),
        // Not one valid OPT: nothing to echo.
        ("two OPT records", two_opts, Some((1, false, 0))),
        ("OPT rdata past the end", opt_overrun, Some((1, false, 0))),
        // The OPT record is sound; what is inside it is not.
        ("EDNS option past its OPT", bad_option, Some((1, true, 0))),
        ("malformed Client Subnet", bad_ecs, Some((1, true, 0))),
        ("OPT as the question type", opt_qtype, Some((1, false, RD))),
        ("opcode NOTIFY", notify.clone(), Some((4, false, 4 << 11 | RD))),
        ("opcode NOTIFY, with OPT", with_opt(notify), Some((4, true, 4 << 11 | RD))),
        ("opcode UPDATE", update.clone(), Some((4, false, 5 << 11 | RD))),
        ("opcode UPDATE, with OPT", with_opt(update), Some((4, true, 5 << 11 | RD))),
        ("opcode 3 with RD and CD", opcode_3, Some((4, false, 3 << 11 | RD))),
        ("a response, not a query", response, None),
        ("shorter than a header", good[..11].to_vec(), None),
    ];
    for (what, msg, want) in &cases {
        assert_eq!(reply(&srv, msg, false).await, *want, "udp: {what}");
    }
    // The server is still answering after all of that.
    assert_eq!(reply(&srv, &good, false).await, Some((0, false, RD)));
    for (what, msg, want) in cases.iter().filter(|c| c.1.len() >= 12) {
        assert_eq!(reply(&srv, msg, true).await, *want, "tcp: {what}");
    }
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv4_and_ipv6_listeners() {
    let dir = TempDir::new();
    let cfg = write_config(&dir, "");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("listen = [\"127.0.0.1:0\"]", "listen = [\"127.0.0.1:0\", \"[::1]:0\"]");
    std::fs::write(&cfg, text).unwrap();
    let srv = TestServer::start_config(dir, cfg).await;
    let addrs = srv.running.as_ref().unwrap().addrs().to_vec();
    assert!(addrs[0].is_ipv4() && addrs[1].is_ipv6(), "{addrs:?}");
    let q = bytes(&query("api.app.example.com.", "AAAA", None));
    for addr in addrs {
        let udp = udp_exchange(addr, &q).await.unwrap_or_else(|| panic!("udp {addr}"));
        let tcp = tcp_exchange(addr, &q).await.unwrap_or_else(|| panic!("tcp {addr}"));
        for a in [udp, tcp] {
            assert_eq!(render(&a), "NOERROR aa\nan: api.app.example.com. 300 AAAA 2001:db8::10");
        }
    }
    srv.stop().await;
}

/// Sends `queries` from `sock` as fast as it can, then collects replies until none come for
/// 300 ms. Returns (full answers, truncated answers, bytes sent, bytes of full answers, the
/// most limiter seconds the flood can have spanned, rcodes seen).
async fn flood(
    sock: &tokio::net::UdpSocket,
    to: std::net::SocketAddr,
    queries: &[Vec<u8>],
) -> (u32, u32, usize, usize, u32, std::collections::BTreeSet<u8>) {
    let sent = std::time::Instant::now();
    let mut out_bytes = 0;
    for q in queries {
        out_bytes += sock.send_to(q, to).await.unwrap();
    }
    let seconds = sent.elapsed().as_secs() as u32 + 2;
    let (mut full, mut truncated, mut in_bytes) = (0, 0, 0);
    let mut rcodes = std::collections::BTreeSet::new();
    let mut buf = vec![0u8; 2048];
    while let Ok(Ok(n)) =
        tokio::time::timeout(std::time::Duration::from_millis(300), sock.recv(&mut buf)).await
    {
        rcodes.insert(buf[3] & 0x0f);
        if buf[2] & 0x02 != 0 {
            truncated += 1;
        } else {
            full += 1;
            in_bytes += n;
        }
    }
    (full, truncated, out_bytes, in_bytes, seconds, rcodes)
}

/// The reflection attack RRL exists for: spoofed queries for random names. NXDOMAIN and
/// wildcard answers are counted per zone and errors per client prefix, so random names share
/// one budget instead of each getting their own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limiting_holds_against_random_names() {
    let srv = TestServer::start_with("[server.rrl]\nresponses_per_second = 5\nslip = 0\n").await;
    let names = |pattern: &str, qtype: &str| -> Vec<Vec<u8>> {
        (0..2000)
            .map(|i| {
                let label = format!("r{i}x{:08x}", (i as u32).wrapping_mul(2_654_435_761));
                let mut q = query(&pattern.replace('*', &label), qtype, Some(1232));
                q.metadata.id = i as u16;
                bytes(&q)
            })
            .collect()
    };
    // OPT as the question type: FORMERR.
    let mut formerr = names("*.app.example.com.", "A");
    for q in &mut formerr {
        let at = q.len() - 11 - 4;
        q[at..at + 2].copy_from_slice(&41u16.to_be_bytes());
    }
    // Each flood from its own address, so that their budgets cannot mix.
    let cases = [
        ("NXDOMAIN", "127.0.3.1", names("*.app.example.com.", "A"), 3),
        ("wildcard", "127.0.4.1", names("*.user.app.example.com.", "A"), 0),
        ("REFUSED", "127.0.5.1", names("*.example.org.", "A"), 5),
        ("FORMERR", "127.0.6.1", formerr, 1),
    ];
    for (what, from, queries, rcode) in cases {
        let sock = tokio::net::UdpSocket::bind(format!("{from}:0")).await.unwrap();
        let (full, truncated, out_bytes, in_bytes, seconds, rcodes) =
            flood(&sock, srv.addr, &queries).await;
        eprintln!(
            "{what}: {full} full answers of {} over at most {seconds} s; amplification {:.3}",
            queries.len(),
            in_bytes as f64 / out_bytes as f64
        );
        assert!((5..=5 * seconds).contains(&full), "{what}: {full} full answers");
        assert_eq!(truncated, 0, "{what}: slip = 0 sends no truncated answers");
        assert_eq!(rcodes, [rcode].into(), "{what}");
        // A name that exists still has its own budget from the same client.
        let q = bytes(&query("api.app.example.com.", "A", None));
        let (full, ..) = flood(&sock, srv.addr, &[q]).await;
        assert_eq!(full, 1, "{what}: a real name is answered during the flood");
    }
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_rate_limiting() {
    // SO_REUSEPORT hashes one client socket to one worker, so one limiter sees its queries.
    let srv = TestServer::start_with("[server.rrl]\nresponses_per_second = 5\nslip = 2\n").await;
    // The server runs with the limits written (not the defaults, nor none).
    let rrl = srv.snapshot().server.rrl.expect("rate limiting on");
    assert_eq!((rrl.responses_per_second, rrl.slip), (5, 2));
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let q = bytes(&query("api.app.example.com.", "A", None));
    // A burst of 40 identical queries from one address. However long sending takes on this
    // machine, it spans at most `seconds` of the limiter's clock seconds.
    let sent = std::time::Instant::now();
    for _ in 0..40 {
        sock.send_to(&q, srv.addr).await.unwrap();
    }
    let seconds = sent.elapsed().as_secs() as u32 + 2;
    let (mut full, mut truncated) = (0, 0);
    let mut buf = vec![0u8; 2048];
    while let Ok(Ok(n)) =
        tokio::time::timeout(std::time::Duration::from_millis(300), sock.recv(&mut buf)).await
    {
        let m = hickory_proto::op::Message::from_vec(&buf[..n]).unwrap();
        if m.metadata.truncation {
            assert!(m.answers.is_empty());
            truncated += 1;
        } else {
            full += 1;
        }
    }
    // At most 5 full answers per clock second the burst touched, every other one of the rest
    // truncated (slip = 2), and the others dropped.
    assert!((5..=5 * seconds).contains(&full), "{full} full answers over {seconds} seconds");
    let rest = 40 - full;
    assert!(
        (rest / 2).saturating_sub(1) <= truncated && truncated <= rest / 2 + 1,
        "{truncated} truncated of {rest} limited answers"
    );
    assert!(full + truncated < 40);
    // Another client prefix is not affected, nor is TCP.
    let other = tokio::net::UdpSocket::bind("127.0.2.1:0").await.unwrap();
    other.send_to(&q, srv.addr).await.unwrap();
    let n = tokio::time::timeout(ANSWER_WAIT, other.recv(&mut buf)).await.unwrap().unwrap();
    assert!(!hickory_proto::op::Message::from_vec(&buf[..n]).unwrap().metadata.truncation);
    assert!(srv.tcp(&q).await.is_some());
    let m = render(&srv.tcp(&q).await.unwrap());
    assert_eq!(m, "NOERROR aa\nan: api.app.example.com. 300 A 192.0.2.10");
    // Counted.
    let metrics = &srv.runtime().metrics;
    let text = {
        let mut t = String::new();
        metrics.render(&mut t);
        t
    };
    let count = |action: &str| {
        text.lines()
            .find_map(|l| {
                l.strip_prefix(&format!("meridian_rrl_responses_total{{action=\"{action}\"}} "))
            })
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap()
    };
    assert_eq!(count("slipped"), truncated);
    assert_eq!(count("dropped"), 40 - full - truncated);
    srv.stop().await;
}

/// Negative answers carry min(SOA TTL, MINIMUM) (RFC 2308 §5), also when the SOA's own TTL
/// is the smaller: a zone with SOA TTL 30 and MINIMUM 3600 says 30.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn negative_ttl_when_the_soa_ttl_is_smaller() {
    let dir = TempDir::new();
    dir.write(
        "z.zone",
        "$TTL 300\n@ 30 SOA ns hostmaster 1 3600 600 86400 3600\n@ NS ns\nns A 192.0.2.1\n",
    );
    let cfg = dir.write(
        "meridian.toml",
        "[server]\nlisten = [\"127.0.0.1:0\"]\n[admin]\nlisten = \"127.0.0.1:0\"\n[[zone]]\nname = \"neg.test\"\nfile = \"z.zone\"\n",
    );
    let srv = TestServer::start_config(dir, cfg).await;
    let a = render(&srv.udp(&bytes(&query("nope.neg.test.", "A", None))).await.unwrap());
    assert_eq!(
        a,
        "NXDOMAIN aa\nns: neg.test. 30 SOA ns.neg.test. hostmaster.neg.test. 1 3600 600 86400 3600"
    );
    let a = render(&srv.udp(&bytes(&query("ns.neg.test.", "MX", None))).await.unwrap());
    assert_eq!(
        a,
        "NOERROR aa\nns: neg.test. 30 SOA ns.neg.test. hostmaster.neg.test. 1 3600 600 86400 3600"
    );
    srv.stop().await;
}

/// What the README promises at the edges of the zone data: class IN only, CNAME chains
/// followed up to 8 links, and glue that does not fit a referral forcing TC (never dropped).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn class_chain_limit_and_glue_truncation() {
    let dir = TempDir::new();
    let mut zone = String::from(
        "$TTL 300\n@ SOA ns hostmaster 1 3600 600 86400 60\n@ NS ns\nns A 192.0.2.1\n",
    );
    for i in 0..10 {
        zone.push_str(&format!("c{i} CNAME c{}\n", i + 1));
    }
    zone.push_str("c10 A 192.0.2.100\n");
    for i in 1..=8 {
        zone.push_str(&format!(
            "sub NS nameserver-{i:02}.sub\nnameserver-{i:02}.sub A 192.0.2.{i}\nnameserver-{i:02}.sub AAAA 2001:db8::{i}\n"
        ));
    }
    dir.write("z.zone", &zone);
    let cfg = dir.write(
        "meridian.toml",
        "[server]\nlisten = [\"127.0.0.1:0\"]\n[admin]\nlisten = \"127.0.0.1:0\"\n[[zone]]\nname = \"edge.test\"\nfile = \"z.zone\"\n",
    );
    let srv = TestServer::start_config(dir, cfg).await;

    // Class CH (version.bind and the like) and ANY class: not ours.
    for class in [hickory_proto::rr::DNSClass::CH, hickory_proto::rr::DNSClass::ANY] {
        let mut q = query("ns.edge.test.", "A", None);
        q.queries[0].set_query_class(class);
        let a = render(&srv.udp(&bytes(&q)).await.unwrap());
        assert_eq!(a, "REFUSED", "class {class}");
    }

    // A chain of exactly 8 links is followed to its address.
    let a = render(&srv.udp(&bytes(&query("c2.edge.test.", "A", Some(1232)))).await.unwrap());
    assert_eq!(a.matches(" CNAME ").count(), 8, "{a}");
    assert!(a.contains("\nan: c10.edge.test. 300 A 192.0.2.100"), "{a}");
    // A longer one is cut after 8 links followed: 9 CNAMEs, no address; the resolver goes on.
    let a = render(&srv.udp(&bytes(&query("c0.edge.test.", "A", Some(1232)))).await.unwrap());
    assert_eq!(a.matches(" CNAME ").count(), 9, "{a}");
    assert!(a.starts_with("NOERROR aa\nan: c0.edge.test. 300 CNAME c1.edge.test."), "{a}");
    assert!(
        a.contains("an: c8.edge.test. 300 CNAME c9.edge.test.") && !a.contains(" A 192.0.2.100"),
        "{a}"
    );

    // The referral to sub. with its 16 glue records needs more than 512 bytes: without EDNS it
    // is sent empty with TC, not with glue left out; with EDNS it is whole, and over TCP too.
    let q = bytes(&query("www.sub.edge.test.", "A", None));
    let a = render(&srv.udp(&q).await.unwrap());
    assert_eq!(a, "NOERROR tc");
    for whole in [
        srv.udp(&bytes(&query("www.sub.edge.test.", "A", Some(1232)))).await.unwrap(),
        srv.tcp(&q).await.unwrap(),
    ] {
        assert!(whole.len() > 512, "{} bytes", whole.len());
        let a = render(&whole);
        assert!(a.starts_with("NOERROR \n"), "{a}");
        assert_eq!(a.matches("\nns: sub.edge.test. 300 NS ").count(), 8, "{a}");
        assert_eq!(a.matches("\nar: nameserver-").count(), 16, "{a}");
    }
    srv.stop().await;
}

/// Names inside RDATA (NS, CNAME, SOA, MX, PTR) that end in the zone's apex are compressed to
/// a pointer into the question, and additional records' owners point at the names they
/// serve; SRV targets never are (RFC 2782). Every answer decodes to the same records as
/// before, with the sizes below; an answer too large for pointers to reach its names (TCP,
/// past 16 KiB) writes the owners out instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rdata_names_are_compressed() {
    let dir = TempDir::new();
    let mut zone = String::from(
        "$TTL 300\n@ SOA ns hostmaster.example.net. 1 3600 600 86400 60\n@ NS ns\n@ NS ns.example.net.\n\
         ns A 192.0.2.1\n@ MX 10 mail\n@ MX 20 mx.example.net.\nmail A 192.0.2.25\n\
         _sip._tcp SRV 0 0 5060 sip\nsip A 192.0.2.50\nptr PTR host.z.test.\nalias CNAME mail\n",
    );
    // Two delegations over TCP: 600 name servers (the glue's owners still within a pointer's
    // reach) and 700 (past it).
    for (sub, n) in [("near", 600), ("far", 700)] {
        for i in 0..n {
            zone.push_str(&format!(
                "{sub} NS ns{i}.{sub}\nns{i}.{sub} A 198.51.{}.{}\n",
                i / 250,
                i % 250
            ));
        }
    }
    dir.write("z.zone", &zone);
    let cfg = dir.write(
        "meridian.toml",
        "[server]\nlisten = [\"127.0.0.1:0\"]\n[admin]\nlisten = \"127.0.0.1:0\"\n[[zone]]\nname = \"z.test\"\nfile = \"z.zone\"\n",
    );
    let srv = TestServer::start_config(dir, cfg).await;
    let cases = [
        (
            "z.test.",
            "NS",
            "NOERROR aa\nan: z.test. 300 NS ns.z.test.\nan: z.test. 300 NS ns.example.net.\n\
             ar: ns.z.test. 300 A 192.0.2.1",
            // Header, question, NS ns+pointer, NS ns.example.net. in full, glue.
            12 + 12 + 17 + 28 + 16,
        ),
        (
            "z.test.",
            "MX",
            "NOERROR aa\nan: z.test. 300 MX 10 mail.z.test.\nan: z.test. 300 MX 20 mx.example.net.\n\
             ar: mail.z.test. 300 A 192.0.2.25",
            12 + 12 + 21 + 30 + 16,
        ),
        (
            "z.test.",
            "SOA",
            "NOERROR aa\nan: z.test. 300 SOA ns.z.test. hostmaster.example.net. 1 3600 600 86400 60",
            12 + 12 + 12 + 5 + 24 + 20,
        ),
        (
            "nope.z.test.",
            "A",
            "NXDOMAIN aa\nns: z.test. 60 SOA ns.z.test. hostmaster.example.net. 1 3600 600 86400 60",
            12 + 17 + 12 + 5 + 24 + 20,
        ),
        (
            "ptr.z.test.",
            "PTR",
            "NOERROR aa\nan: ptr.z.test. 300 PTR host.z.test.",
            12 + 16 + 12 + 7,
        ),
        (
            "alias.z.test.",
            "A",
            "NOERROR aa\nan: alias.z.test. 300 CNAME mail.z.test.\nan: mail.z.test. 300 A 192.0.2.25",
            12 + 18 + 12 + 7 + 16,
        ),
        // SRV's target is written out; the additional record's owner points at it.
        (
            "_sip._tcp.z.test.",
            "SRV",
            "NOERROR aa\nan: _sip._tcp.z.test. 300 SRV 0 0 5060 sip.z.test.\nar: sip.z.test. 300 A 192.0.2.50",
            12 + 22 + 12 + 6 + 12 + 16,
        ),
    ];
    for (name, rtype, want, size) in cases {
        let a = srv.udp(&bytes(&query(name, rtype, None))).await.unwrap();
        assert_eq!(render(&a), want, "{name} {rtype}");
        assert_eq!(a.len(), size, "{name} {rtype}: {}", render(&a));
    }
    for (sub, n) in [("near", 600), ("far", 700)] {
        let a = srv.tcp(&bytes(&query(&format!("www.{sub}.z.test."), "A", None))).await.unwrap();
        let m = hickory_proto::op::Message::from_vec(&a).unwrap();
        assert_eq!((m.authorities.len(), m.additionals.len()), (n, n), "{sub}");
        for (ns, glue) in m.authorities.iter().zip(m.additionals.iter()) {
            assert_eq!(ns.data.to_string(), glue.name.to_string(), "{sub}");
        }
        let glue = &m.additionals[n - 1];
        let i = n - 1;
        assert_eq!(glue.data.to_string(), format!("198.51.{}.{}", i / 250, i % 250));
    }
    // One connection: a small answer, one of 16 KiB and more (past the buffer a connection
    // starts with, so it grows), and a small one again; each whole.
    let mut conn = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
    for (name, rtype, want) in
        [("z.test.", "NS", 3), ("www.far.z.test.", "A", 1400), ("ptr.z.test.", "PTR", 1)]
    {
        use tokio::io::AsyncWriteExt;
        conn.write_all(&frame(&bytes(&query(name, rtype, None)))).await.unwrap();
        let a = read_frame(&mut conn).await.expect("an answer");
        let m = hickory_proto::op::Message::from_vec(&a).unwrap();
        assert!(!m.metadata.truncation, "{name}");
        let records = m.answers.len() + m.authorities.len() + m.additionals.len();
        assert_eq!(records, want, "{name}");
    }
    srv.stop().await;
}
