//! The RTSP server against clients that are wrong or hostile: no or wrong credentials,
//! malformed, oversized and slow requests, clients that vanish, and a Transport header that
//! names someone else's address.

mod support;

use std::time::Duration;

use onvif::streaming::MetadataFrame;
use support::{
    authorization, challenge_nonce, eventually, play, playing_interleaved, server, url, RawClient,
    PASSWORD, USER,
};
use tokio::io::AsyncWriteExt;
use tokio::net::UdpSocket;

#[tokio::test]
async fn no_or_wrong_credentials_get_401_with_a_digest_challenge() {
    let (server, _device) = server(|_| {}).await;
    let base = url(&server, "door");
    let mut client = RawClient::connect(&server).await;
    let options = client.request("OPTIONS", "*", &[]).await;
    assert_eq!(options.status, 200);
    assert!(options.header("Public").unwrap().contains("GET_PARAMETER"));

    let anonymous = client.request("DESCRIBE", &base, &[]).await;
    assert_eq!(anonymous.status, 401);
    let challenge = anonymous.header("WWW-Authenticate").unwrap();
    assert!(
        challenge.starts_with("Digest ") && challenge.contains("realm=\"vigil-test\""),
        "{challenge}"
    );
    assert!(challenge.contains("algorithm=MD5"));
    let basic = client
        .request(
            "DESCRIBE",
            &base,
            &["Authorization: Basic dmlld2VyOndhdGNoLWl0LWFsbA==".into()],
        )
        .await;
    assert_eq!(
        basic.status, 401,
        "Basic is answered with the Digest challenge"
    );
    assert!(basic
        .header("WWW-Authenticate")
        .unwrap()
        .starts_with("Digest "));

    let nonce = challenge_nonce(challenge);
    let wrong = client
        .request(
            "DESCRIBE",
            &base,
            &[authorization(USER, "guess", &nonce, "DESCRIBE", &base)],
        )
        .await;
    assert_eq!(wrong.status, 401);
    // A right answer computed for another stream does not open this one.
    let lobby = url(&server, "lobby");
    let elsewhere = client
        .request(
            "DESCRIBE",
            &base,
            &[authorization(USER, PASSWORD, &nonce, "DESCRIBE", &lobby)],
        )
        .await;
    assert_ne!(elsewhere.status, 200);

    let right = client
        .request(
            "DESCRIBE",
            &base,
            &[authorization(USER, PASSWORD, &nonce, "DESCRIBE", &base)],
        )
        .await;
    assert_eq!(right.status, 200);
    let sdp = String::from_utf8(right.body.clone()).unwrap();
    assert!(sdp.contains("m=application 0 RTP/AVP 107"), "{sdp}");
    assert!(sdp.contains("a=rtpmap:107 vnd.onvif.metadata/90000"));
    assert_eq!(
        right.header("Content-Base"),
        Some(format!("{base}/").as_str())
    );
    let unknown = url(&server, "garage");
    let missing = client
        .request(
            "DESCRIBE",
            &unknown,
            &[authorization(USER, PASSWORD, &nonce, "DESCRIBE", &unknown)],
        )
        .await;
    assert_eq!(missing.status, 404);
}

#[tokio::test]
async fn malformed_oversized_and_slow_requests_leave_a_playing_session_alone() {
    let (server, _device) = server(|c| c.limits.request_timeout = Duration::from_millis(500)).await;
    let base = url(&server, "door");
    let mut good = RawClient::connect(&server).await;
    play(&mut good, &base, "RTP/AVP/TCP;unicast;interleaved=0-1").await;

    let many_headers = format!("OPTIONS * RTSP/1.0\r\n{}\r\n", "X-Pad: 1\r\n".repeat(100));
    let bad: Vec<Vec<u8>> = vec![
        b"\x00\x01\x02 garbage\r\n\r\n".to_vec(),
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        vec![b'A'; 9 * 1024],
        many_headers.into_bytes(),
        b"SET_PARAMETER * RTSP/1.0\r\nCSeq: 1\r\nContent-Length: 1000000\r\n\r\n".to_vec(),
        b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nContent-Length: -5\r\n\r\n".to_vec(),
    ];
    for bytes in bad {
        let mut hostile = RawClient::connect(&server).await;
        hostile.stream.write_all(&bytes).await.unwrap();
        let reply = hostile.reply().await.expect("an answer before closing");
        assert_eq!(
            reply.status,
            400,
            "{:?}",
            String::from_utf8_lossy(&bytes[..20])
        );
        assert!(hostile.reply().await.is_none(), "the connection closes");
    }
    // A request trickled in and never finished is dropped after the request timeout.
    let mut slow = RawClient::connect(&server).await;
    slow.stream
        .write_all(b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n")
        .await
        .unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(5), slow.reply()).await;
    assert!(matches!(closed, Ok(None)), "the slow connection is closed");

    let frame = MetadataFrame::keep_alive(std::time::SystemTime::now());
    assert_eq!(server.publish("door", &frame), 1);
    let expected = frame.to_xml();
    assert!(
        receives(&mut good, &expected).await,
        "the good session still gets its documents"
    );
}

#[tokio::test]
async fn udp_goes_to_the_peer_only_and_silent_sessions_expire() {
    let (server, _device) = server(|c| {
        c.session_timeout = Duration::from_secs(1);
        c.max_sessions = 1;
    })
    .await;
    let base = url(&server, "door");
    let rtp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let rtcp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let (rtp_port, rtcp_port) = (
        rtp.local_addr().unwrap().port(),
        rtcp.local_addr().unwrap().port(),
    );
    let mut client = RawClient::connect(&server).await;
    // The destination names another host: packets must still come here, to the peer.
    let transport =
        format!("RTP/AVP;unicast;client_port={rtp_port}-{rtcp_port};destination=127.0.0.2");
    let session = play(&mut client, &base, &transport).await;

    let mut other = RawClient::connect(&server).await;
    let track = format!("{base}/track1");
    let refused = other
        .authorized(
            "SETUP",
            &track,
            &["Transport: RTP/AVP/TCP;unicast;interleaved=0-1".into()],
            USER,
            PASSWORD,
        )
        .await;
    assert_eq!(refused.status, 453, "the session limit holds");
    let theirs = other
        .authorized(
            "PLAY",
            &base,
            &[format!("Session: {session}")],
            "admin",
            "admin-secret",
        )
        .await;
    assert_eq!(theirs.status, 454, "a session belongs to its user");

    // The product publishes from its own threads, outside the runtime.
    let publisher = server.clone();
    let reached = std::thread::spawn(move || {
        publisher.publish(
            "door",
            &MetadataFrame::keep_alive(std::time::SystemTime::now()),
        )
    })
    .join()
    .unwrap();
    assert_eq!(reached, 1);
    let mut packet = [0u8; 2048];
    let (length, from) = tokio::time::timeout(Duration::from_secs(5), rtp.recv_from(&mut packet))
        .await
        .expect("RTP arrives at the peer's port")
        .unwrap();
    assert!(length > 12 && from.ip().is_loopback());
    assert_eq!(from.port(), server.udp_ports().0);

    // Silent (no request, no RTCP): the session goes after its timeout.
    assert!(eventually(Duration::from_secs(5), || server.session_count() == 0).await);
    // (Its quiet connection went too; ask on a new one.)
    let mut later = RawClient::connect(&server).await;
    let gone = later
        .authorized(
            "GET_PARAMETER",
            &base,
            &[format!("Session: {session}")],
            USER,
            PASSWORD,
        )
        .await;
    assert_eq!(gone.status, 454);
}

#[tokio::test]
async fn connections_are_capped_per_address() {
    let (server, _device) = server(|c| c.max_connections_per_address = 2).await;
    let mut first = RawClient::connect(&server).await;
    let mut second = RawClient::connect(&server).await;
    for client in [&mut first, &mut second] {
        assert_eq!(client.request("OPTIONS", "*", &[]).await.status, 200);
    }
    let mut third = RawClient::connect(&server).await;
    assert_eq!(third.reply().await.expect("a refusal").status, 503);
    assert!(third.reply().await.is_none());
    drop(first);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let mut again = RawClient::connect(&server).await;
        if again.request_or_close("OPTIONS", "*").await == Some(200) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "a closed connection frees its place"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn broken_http_tunnels_are_refused() {
    let (server, _device) = server(|_| {}).await;
    let mut no_cookie = RawClient::connect(&server).await;
    no_cookie
        .stream
        .write_all(
            b"GET /onvif/metadata/door HTTP/1.0\r\nAccept: application/x-rtsp-tunnelled\r\n\r\n",
        )
        .await
        .unwrap();
    let reply = no_cookie.reply().await.expect("an answer");
    assert_eq!(reply.status, 400);
    assert!(no_cookie.reply().await.is_none());

    // A POST whose GET was never opened carries nothing anywhere.
    let mut orphan = RawClient::connect(&server).await;
    orphan
        .stream
        .write_all(b"POST /onvif/metadata/door HTTP/1.0\r\nx-sessioncookie: nobody\r\nContent-Length: 32767\r\n\r\nT1BUSU9OUyAqIFJUU1AvMS4wDQpDU2VxOiAxDQoNCg==")
        .await
        .unwrap();
    assert!(orphan.reply().await.is_none(), "closed without an answer");

    // A GET answered, then a POST with its cookie: the answer comes on the GET.
    let mut get = RawClient::connect(&server).await;
    get.stream
        .write_all(b"GET /onvif/metadata/door HTTP/1.0\r\nx-sessioncookie: c1\r\nAccept: application/x-rtsp-tunnelled\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(get.reply().await.expect("the tunnel opens").status, 200);
    let mut post = RawClient::connect(&server).await;
    post.stream
        .write_all(b"POST /onvif/metadata/door HTTP/1.0\r\nx-sessioncookie: c1\r\nContent-Length: 32767\r\n\r\nT1BUSU9OUyAqIFJUU1AvMS4wDQpDU2VxOiAxDQoNCg==")
        .await
        .unwrap();
    let options = get.reply().await.expect("the OPTIONS answer on the GET");
    assert_eq!((options.status, options.header("CSeq")), (200, Some("1")));
}

#[tokio::test]
async fn stopping_the_server_ends_its_connections_and_its_profiles() {
    let (server, device) = server(|_| {}).await;
    assert!(device.metadata_rtsp_port().is_some());
    let mut client = RawClient::connect(&server).await;
    assert_eq!(client.request("OPTIONS", "*", &[]).await.status, 200);
    drop(server);
    assert_eq!(device.metadata_rtsp_port(), None, "Media stops naming it");
    let closed = tokio::time::timeout(Duration::from_secs(5), client.reply()).await;
    assert!(matches!(closed, Ok(None)), "its connections close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_clients_on_one_source_each_get_every_document() {
    let (server, _device) = server(|c| {
        c.max_connections_per_address = 64;
        c.keep_alive_after = Duration::from_secs(60);
    })
    .await;
    let base = url(&server, "door");
    let mut clients = Vec::new();
    for _ in 0..50 {
        let mut client = RawClient::connect(&server).await;
        play(&mut client, &base, "RTP/AVP/TCP;unicast;interleaved=0-1").await;
        clients.push(client);
    }
    assert_eq!(server.playing_sessions("door"), 50);
    let frame = MetadataFrame::keep_alive(std::time::SystemTime::now());
    assert_eq!(server.publish("door", &frame), 50);
    let expected = frame.to_xml();
    for client in &mut clients {
        assert!(receives(client, &expected).await);
    }
}

/// Whether `client` gets `document` (one packet, marker set) on channel 0; keep-alive
/// documents may come before it.
async fn receives(client: &mut RawClient, document: &str) -> bool {
    while let Some(packet) = client.frame(0, Duration::from_secs(10)).await {
        assert_eq!(packet[1] & 0x7f, 107);
        if packet[1] & 0x80 != 0 && packet[12..] == *document.as_bytes() {
            return true;
        }
    }
    false
}

#[tokio::test]
async fn an_idle_source_sends_a_document_every_second() {
    let (server, _device) = server(|_| {}).await;
    let mut client = playing_interleaved(&server, "door").await;
    let mut arrivals = Vec::new();
    while arrivals.len() < 4 {
        let packet = client
            .frame(0, Duration::from_secs(5))
            .await
            .expect("a keep-alive");
        assert_ne!(packet[1] & 0x80, 0, "one packet, marker set");
        let text = String::from_utf8(packet[12..].to_vec()).unwrap();
        assert!(text.contains("<tt:Frame UtcTime=") && !text.contains("<tt:Object"));
        arrivals.push(std::time::Instant::now());
    }
    for pair in arrivals.windows(2) {
        let gap = pair[1] - pair[0];
        // One second by design; the margin is for a loaded test machine's timers.
        assert!(gap <= Duration::from_millis(1_500), "{gap:?}");
    }
}
