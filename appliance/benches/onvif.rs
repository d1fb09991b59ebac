//! ONVIF event delivery and request handling, over real HTTP on 127.0.0.1 against the
//! appliance's own ONVIF service (the one `vigil run` starts), with no cameras:
//! - alert latency: FaceMatched published on the bus -> a waiting PullMessages returns it;
//! - 100 pull-point subscribers, each long-polling, each receiving every alert;
//! - GetSystemDateAndTime requests per second with WS-Security (a fresh token each).
//!
//! `cargo bench -p vigil --bench onvif`

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use vigil::config::OnvifConfig;
use vigil::daemon::LiveView;
use vigil::events::{Event, EventBus, FaceMatched};
use vigil::onvif_device::OnvifService;
use vigil::vision::BoundingBox;

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

struct Target {
    client: HttpClient,
    base: String,
    user: String,
    password: String,
}

impl Target {
    fn token(&self) -> String {
        let mut nonce = [0u8; 16];
        openssl::rand::rand_bytes(&mut nonce).unwrap();
        let created = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let mut material = nonce.to_vec();
        material.extend_from_slice(created.as_bytes());
        material.extend_from_slice(self.password.as_bytes());
        let digest = openssl::hash::hash(openssl::hash::MessageDigest::sha1(), &material).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD;
        format!(
            "<wsse:Security xmlns:wsse=\"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd\" \
             xmlns:wsu=\"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd\">\
             <wsse:UsernameToken><wsse:Username>{}</wsse:Username>\
             <wsse:Password Type=\"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest\">{}</wsse:Password>\
             <wsse:Nonce>{}</wsse:Nonce><wsu:Created>{created}</wsu:Created></wsse:UsernameToken></wsse:Security>",
            self.user,
            b64.encode(digest),
            b64.encode(nonce)
        )
    }

    async fn call(&self, path: &str, body: &str) -> (u16, String) {
        let envelope = format!(
            "<s:Envelope xmlns:s=\"http://www.w3.org/2003/05/soap-envelope\" xmlns:tds=\"http://www.onvif.org/ver10/device/wsdl\" \
             xmlns:tev=\"http://www.onvif.org/ver10/events/wsdl\"><s:Header>{}</s:Header><s:Body>{body}</s:Body></s:Envelope>",
            self.token()
        );
        let uri = if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}{path}", self.base)
        };
        let request = hyper::Request::post(uri)
            .header("Content-Type", "application/soap+xml; charset=utf-8")
            .body(Full::new(Bytes::from(envelope)))
            .unwrap();
        let response = self.client.request(request).await.expect("request");
        let status = response.status().as_u16();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    async fn pull_point(&self) -> String {
        let (status, text) = self
            .call("/onvif/events_service", "<tev:CreatePullPointSubscription><tev:InitialTerminationTime>PT600S</tev:InitialTerminationTime></tev:CreatePullPointSubscription>")
            .await;
        assert_eq!(status, 200, "{text}");
        let start = text.find("<wsa:Address>").unwrap() + "<wsa:Address>".len();
        let end = text[start..].find('<').unwrap() + start;
        text[start..end].to_string()
    }

    /// One PullMessages; returns the ObjectIds (our alert numbers) it brought.
    async fn pull(&self, address: &str, timeout_s: u32) -> Vec<u64> {
        let (status, text) = self
            .call(address, &format!("<tev:PullMessages><tev:Timeout>PT{timeout_s}S</tev:Timeout><tev:MessageLimit>100</tev:MessageLimit></tev:PullMessages>"))
            .await;
        assert_eq!(status, 200, "{text}");
        text.match_indices("Name=\"ObjectId\" Value=\"")
            .filter_map(|(i, m)| {
                let rest = &text[i + m.len()..];
                rest[..rest.find('"')?].parse().ok()
            })
            .collect()
    }
}

fn alert(number: u64) -> Event {
    Event::FaceMatched(FaceMatched {
        alert: uuid::Uuid::new_v4(),
        upgrade: false,
        camera: "cam1".into(),
        track: number,
        person_id: uuid::Uuid::new_v4(),
        person: "Jane Doe".into(),
        watchlist_id: uuid::Uuid::new_v4(),
        watchlist: "staff".into(),
        watchlist_kind: Default::default(),
        score: 0.8,
        likelihood: 0.83,
        time: chrono::Utc::now(),
        stream_time_s: 0.0,
        bbox: BoundingBox {
            x1: 10.0,
            y1: 10.0,
            x2: 110.0,
            y2: 130.0,
        },
        quality: 0.9,
        // A thumbnail of typical size (about 12 KB).
        thumbnail_jpeg: Arc::new(vec![0u8; 12_000]),
    })
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn summary(label: &str, mut samples: Vec<f64>) {
    samples.sort_by(f64::total_cmp);
    println!(
        "{label}: median {:.2} ms, p95 {:.2} ms, max {:.2} ms ({} samples)",
        percentile(&samples, 0.5),
        percentile(&samples, 0.95),
        samples[samples.len() - 1],
        samples.len()
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let data = tempfile::tempdir().unwrap();
        let bus = EventBus::new();
        let config = OnvifConfig {
            listen: "127.0.0.1:0".into(),
            discovery_interfaces: Vec::new(),
            // 100 pull points below, all of one user.
            max_subscriptions_per_user: 256,
            ..OnvifConfig::default()
        };
        let (users, _first) = vigil::users::FileUsers::open(data.path()).expect("users");
        // The first password must be changed before ONVIF accepts it, as an operator would.
        let password = String::from("the bench's passphrase");
        onvif::auth::UserDirectory::change(&users, &|u| {
            u.set("admin", Some(password.clone()), onvif::auth::UserLevel::Administrator)
        })
        .expect("password set");
        let service = OnvifService::start(
            &config,
            data.path(),
            LiveView::default(),
            &bus,
            Arc::new(users),
            Box::new(|| {}),
            None,
            None,
            None,
        )
        .await
        .expect("ONVIF service");
        let target = Arc::new(Target {
            client: Client::builder(TokioExecutor::new()).pool_max_idle_per_host(256).build_http(),
            base: format!("http://{}", service.address),
            user: "admin".into(),
            password,
        });
        println!("ONVIF benchmarks on {} ({} cores)", service.address, std::thread::available_parallelism().map_or(0, |n| n.get()));

        // 1. One waiting subscriber: publish while its PullMessages is parked.
        let address = target.pull_point().await;
        let mut latencies = Vec::new();
        for number in 0..200u64 {
            let waiting = tokio::spawn({
                let (target, address) = (target.clone(), address.clone());
                async move { (target.pull(&address, 10).await, Instant::now()) }
            });
            // Give the request time to reach the server and park (a benchmark, not a test).
            tokio::time::sleep(Duration::from_millis(20)).await;
            let published = Instant::now();
            bus.publish(alert(number));
            let (ids, returned) = waiting.await.unwrap();
            assert_eq!(ids, [number], "the pull returned the alert");
            latencies.push((returned - published).as_secs_f64() * 1000.0);
        }
        summary("alert latency, bus -> waiting PullMessages returns", latencies);

        // 2. 100 subscribers long-polling; 50 alerts at 20 per second.
        let subscribers = 100;
        let alerts = 50u64;
        let mut addresses = Vec::new();
        for _ in 0..subscribers {
            addresses.push(target.pull_point().await);
        }
        let published_at = Arc::new(parking_lot::Mutex::new(vec![None::<Instant>; alerts as usize]));
        let mut tasks = Vec::new();
        for address in addresses {
            let (target, published_at) = (target.clone(), published_at.clone());
            tasks.push(tokio::spawn(async move {
                let mut received = Vec::new();
                let mut delays = Vec::new();
                while received.len() < alerts as usize {
                    let ids = target.pull(&address, 5).await;
                    let now = Instant::now();
                    for id in ids {
                        if let Some(at) = published_at.lock()[id as usize] {
                            delays.push((now - at).as_secs_f64() * 1000.0);
                        }
                        received.push(id);
                    }
                }
                (received, delays)
            }));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let started = Instant::now();
        for number in 0..alerts {
            published_at.lock()[number as usize] = Some(Instant::now());
            bus.publish(alert(number));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut all_delays = Vec::new();
        let mut complete = 0;
        for task in tasks {
            let (received, delays) = tokio::time::timeout(Duration::from_secs(60), task).await.expect("subscriber done").unwrap();
            let mut sorted = received.clone();
            sorted.sort_unstable();
            sorted.dedup();
            if sorted.len() == alerts as usize && received.len() == alerts as usize {
                complete += 1;
            }
            all_delays.extend(delays);
        }
        println!(
            "{subscribers} pull-point subscribers, {alerts} alerts each at 20/s: {complete}/{subscribers} received every alert exactly once, in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        summary("  delivery latency across all subscribers", all_delays);

        // 3. GetSystemDateAndTime with WS-Security, 8 connections, 5 s.
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut workers = Vec::new();
        for _ in 0..8 {
            let target = target.clone();
            workers.push(tokio::spawn(async move {
                let mut done = 0u64;
                while Instant::now() < deadline {
                    let (status, _) = target.call("/onvif/device_service", "<tds:GetSystemDateAndTime/>").await;
                    assert_eq!(status, 200);
                    done += 1;
                }
                done
            }));
        }
        let mut total = 0;
        for worker in workers {
            total += worker.await.unwrap();
        }
        println!("GetSystemDateAndTime with WS-Security (client and server on the same 2 cores): {:.0} requests/s", total as f64 / 5.0);
        service.stop().await;
    });
}
