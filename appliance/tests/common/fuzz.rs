//! A small deterministic mutation fuzzer on stable Rust, for every parser that reads bytes
//! from the network: shared by `benches/fuzz.rs` (a bounded run per target, figures printed)
//! and `tests/fuzz_regressions.rs` (the corpus and the kept findings replayed, and a short run).
//!
//! Inputs start from the seed corpus of `tests/fuzz/corpus/<target>/` (real client messages,
//! see tests/fuzz/README.md) and are mutated by a seeded xorshift generator: bit flips, byte
//! insertion, deletion and duplication, splices of two inputs, dictionary tokens of the
//! target, repetition (deep nesting, huge attributes), numbers swapped for extreme ones, and
//! truncation. An input whose outcome reads differently from every earlier one joins the pool
//! that later inputs are mutated from (a poor man's coverage feedback; no instrumentation).
//!
//! Each input runs under `catch_unwind`. A finding is a panic, an input that takes longer
//! than the slow bound, a watchdog-detected hang (the process is then stopped, the input
//! kept), or a broken invariant of the target (an XML tree beyond its limits, a refusal
//! without a message, an answer that is not well-formed, a replayed credential accepted).
//! Findings are written to `target/fuzz-findings/<target>/<hash>` with `<hash>.txt` saying why.
#![allow(dead_code)] // the bench and the test use different parts

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use base64::Engine as _;

/// Every target, in the order they are run.
pub const TARGETS: &[&str] = &[
    "xml",
    "soap",
    "wsse",
    "digest",
    "discovery",
    "multipart",
    "zip",
    "config",
    "image",
];

/// What one input did: the parser took it, or refused it with a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Accepted(String),
    Refused(String),
}

/// An input's outcome: `Err` is a finding (a broken invariant, a panic, too slow).
pub type Outcome = Result<Verdict, String>;

/// The checkout's root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the crate is in the workspace")
        .to_path_buf()
}

/// `target/fuzz-findings` of the workspace (or of `$CARGO_TARGET_DIR`).
pub fn findings_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target"))
        .join("fuzz-findings")
}

/// A number from the environment, or the default.
pub fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().replace('_', "").parse().ok())
        .unwrap_or(default)
}

/// xorshift64*: small, fast, and the same sequence for the same seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// In `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    pub fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
}

/// FNV-1a, for finding names and target seeds.
pub fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

// ---------------------------------------------------------------------------------------
// Targets

/// A parser under test: its seeds, its dictionary and how one input is run through it.
pub struct Target {
    pub name: &'static str,
    /// Corpus folders (under tests/fuzz/corpus) whose files seed it.
    pub corpus: &'static [&'static str],
    pub dictionary: Vec<Vec<u8>>,
    /// Inputs grow to at most this many bytes.
    pub max_len: usize,
    run: RunInput,
}

type RunInput = Box<dyn FnMut(&[u8]) -> Outcome>;

impl Target {
    pub fn run(&mut self, input: &[u8]) -> Outcome {
        (self.run)(input)
    }
}

/// The users every authenticating target knows.
const USER: &str = "fuzz";
const PASSWORD: &str = "fuzz-password";
const REALM: &str = "vigil";
/// Digest requests are checked as a snapshot GET, the path the corpus's headers name.
const DIGEST_PATH: &str = "/onvif/snapshot/cam1.jpg";
/// The pixel limit of the image target: below the product's 50 MP so that a header claiming
/// a huge picture does not make each input take a second; the limit itself is what is tested.
pub const MAX_PIXELS: u64 = 4_000_000;
/// What an upload's photos may unpack to in the upload targets (the product allows 1 GiB).
pub const UPLOAD_BUDGET: u64 = 64 * 1024 * 1024;

fn tokens(list: &[&str]) -> Vec<Vec<u8>> {
    list.iter().map(|t| t.as_bytes().to_vec()).collect()
}

fn xml_dictionary() -> Vec<Vec<u8>> {
    let mut d = tokens(&[
        "<!DOCTYPE r [<!ENTITY e \"&e;&e;\">]>",
        "<!DOCTYPE",
        "<!ENTITY x SYSTEM \"file:///etc/passwd\">",
        "<!ELEMENT",
        "<!ATTLIST",
        "&",
        "&amp;",
        "&lt;",
        "&x;",
        "&#",
        "&#x",
        "&#0;",
        "&#x110000;",
        "&#xD800;",
        "&#65;",
        ";",
        "]]>",
        "<![CDATA[",
        "<!--",
        "-->",
        "<?",
        "?>",
        "<?xml version=\"1.0\" encoding=\"UTF-16\"?>",
        "<?xml version=\"1.1\" encoding=\"ISO-8859-1\" standalone=\"yes\"?>",
        "<?pi data?>",
        "<",
        ">",
        "</",
        "/>",
        "=\"",
        "\"",
        "'",
        "xmlns=\"\"",
        "xmlns:p=\"urn:p\"",
        "xmlns:xml=\"urn:x\"",
        "xmlns:xmlns=\"urn:x\"",
        "p:",
        "xml:",
        ":",
        "<a>",
        "</a>",
        "<a/>",
        "<p:a xmlns:p=\"urn:p\">",
        " a=\"1\"",
        " p:a=\"1\"",
        "\u{feff}",
        "\u{0}",
        "\r\n",
        "\u{fffd}",
        "\u{1F600}",
        "\u{ff}",
    ]);
    d.push(b"<a>".repeat(40));
    d.push(b"</a>".repeat(40));
    d.push(b"<a/>".repeat(600));
    d.push(b" a=\"\"".repeat(40));
    d.push(format!(" x=\"{}\"", "A".repeat(70_000)).into_bytes());
    d.push(format!("xmlns:u=\"urn:{}\"", "u".repeat(60_000)).into_bytes());
    d.push(format!("xmlns=\"urn:{}\"", "d".repeat(60_000)).into_bytes());
    d.push(b"<u:a/>".repeat(500));
    d.push(b" u:a=\"\"".repeat(30));
    d.push(vec![0xff, 0xfe]);
    d.push(vec![0xc3]);
    d
}

fn soap_dictionary() -> Vec<Vec<u8>> {
    let mut d = xml_dictionary();
    d.extend(tokens(&[
        "http://www.w3.org/2003/05/soap-envelope",
        "http://schemas.xmlsoap.org/soap/envelope/",
        "<s:Envelope xmlns:s=\"http://www.w3.org/2003/05/soap-envelope\">",
        "<s:Header>",
        "</s:Header>",
        "<s:Body>",
        "</s:Body>",
        "Envelope",
        "Header",
        "Body",
        "<wsa:To>",
        "<wsa:Action>",
        "<wsa:MessageID>",
        "<GetDeviceInformation/>",
    ]));
    d
}

fn wsse_dictionary() -> Vec<Vec<u8>> {
    let mut d = soap_dictionary();
    d.extend(tokens(&[
        "NONCE",
        "CREATED",
        "DIGEST",
        "fuzz",
        "admin",
        "<wsse:Security xmlns:wsse=\"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd\">",
        "<wsse:UsernameToken>",
        "<wsse:Username>",
        "<wsse:Password Type=\"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest\">",
        "#PasswordText",
        "<wsse:Nonce>",
        "<wsu:Created>",
        "2000-01-01T00:00:00Z",
        "9999-12-31T23:59:59+14:00",
        "1970-01-01T00:00:00-00:00",
        "2024-02-30T25:61:61.123456789Z",
        "====",
        "AAAAAAAAAAAAAAAAAAAAAA==",
    ]));
    d.push(b"QUFB".repeat(40));
    d
}

fn digest_dictionary() -> Vec<Vec<u8>> {
    tokens(&[
        "Digest ",
        "Basic ",
        "\"",
        "\\",
        "\\\"",
        ",",
        ", ",
        "=",
        "==",
        "username=",
        "realm=",
        "nonce=",
        "uri=",
        "response=",
        "algorithm=",
        "qop=",
        "nc=",
        "cnonce=",
        "opaque=",
        "userhash=true",
        "username*=UTF-8''%C3%A9",
        "\"vigil\"",
        "NONCE",
        "RESPONSE",
        "MD5",
        "MD5-sess",
        "SHA-256",
        "sha-256",
        "SHA-512-256",
        "auth",
        "auth-int",
        "00000001",
        "ffffffffffffffff",
        "10000000000000000",
        "-1",
        "/onvif/snapshot/cam1.jpg",
        "http://127.0.0.1:8080/onvif/snapshot/cam1.jpg?x=1",
        "*",
        "//",
        "://",
        "?",
        "fuzz",
        "admin",
        "\u{e9}",
        "\u{0}",
        "\r\n",
        "..",
    ])
}

fn discovery_dictionary() -> Vec<Vec<u8>> {
    let mut d = xml_dictionary();
    d.extend(tokens(&[
        "http://schemas.xmlsoap.org/ws/2005/04/discovery",
        "http://schemas.xmlsoap.org/ws/2004/08/addressing",
        "<d:Probe>",
        "<d:Resolve>",
        "<d:Types>",
        "<d:Scopes>",
        " MatchBy=\"http://schemas.xmlsoap.org/ws/2005/04/discovery/strcmp0\"",
        " MatchBy=\"http://schemas.xmlsoap.org/ws/2005/04/discovery/rfc3986\"",
        "dn:NetworkVideoTransmitter",
        "tds:Device",
        "xmlns:dn=\"http://www.onvif.org/ver10/network/wsdl\"",
        "onvif://www.onvif.org/",
        "onvif://www.onvif.org/Profile/Streaming",
        "onvif://WWW.ONVIF.ORG/./name/../",
        "urn:uuid:",
        "<a:MessageID>",
        "<a:Address>",
        "]]><x>",
    ]));
    d
}

fn zip_dictionary() -> Vec<Vec<u8>> {
    let mut d = tokens(&[
        "PK\u{3}\u{4}",
        "PK\u{1}\u{2}",
        "PK\u{5}\u{6}",
        "PK\u{6}\u{6}",
        "PK\u{6}\u{7}",
        "PK\u{7}\u{8}",
        "../",
        "..\\",
        "/",
        "__MACOSX/",
        ".DS_Store",
        ".zip",
        "Alice/",
        ".jpg",
    ]);
    for bytes in [
        &[0xff, 0xff, 0xff, 0xff][..],
        &[0x00, 0x00, 0x00, 0x00],
        &[0xff, 0xff],
        &[0x00, 0x00],
        &[0x00, 0x00, 0x00, 0x80],
        &[0x01, 0x00, 0x10, 0x00], // the zip64 extra field's id and size
        &[0x08, 0x00],             // deflate
        &[0x0c, 0x00],             // bzip2 (not built in)
        &[0x63, 0x00],             // AES
        &[0x01, 0x00],             // encrypted flag
        &[0x08, 0x08],             // data descriptor + UTF-8 flags
    ] {
        d.push(bytes.to_vec());
    }
    d
}

fn multipart_dictionary() -> Vec<Vec<u8>> {
    let mut d = tokens(&[
        "\r\n",
        "\r\n\r\n",
        "--",
        "Content-Type: multipart/form-data; boundary=",
        "multipart/form-data",
        "boundary=",
        "boundary=\"\"",
        ";",
        "\"",
        "Content-Disposition: form-data; name=\"files\"; filename=\"",
        "Content-Disposition: form-data; name=\"person\"\r\n\r\n",
        "name=\"person\"",
        "filename=\"x.zip\"",
        "filename*=UTF-8''%C3%A9.jpg",
        "Content-Type: image/jpeg\r\n",
        "Content-Transfer-Encoding: base64\r\n",
        ".zip",
        ".ZIP",
        "/",
        "\\",
        "__MACOSX/",
        "../",
        "\u{e9}",
    ]);
    d.extend(zip_dictionary());
    d
}

fn config_dictionary() -> Vec<Vec<u8>> {
    tokens(&[
        "[onvif]\n",
        "[web]\n",
        "[analysis]\n",
        "[privacy]\n",
        "[privacy.watchlists.x]\n",
        "[[camera]]\n",
        "[onvif.limits]\n",
        "[[camera]]\nid = \"a\"\nurl = \"rtsp://h/s\"\n",
        " = ",
        "\"",
        "'''",
        "\"\"\"",
        "\\u0000",
        "\\U0010FFFF",
        "\\",
        "#",
        "\n",
        "[",
        "]",
        "{",
        "}",
        "{ a = 1 }",
        "[1, 2]",
        ",",
        ".",
        "true",
        "false",
        "nan",
        "inf",
        "-inf",
        "1e308",
        "-0.0",
        "0x7fffffffffffffff",
        "-9223372036854775808",
        "18446744073709551616",
        "1979-05-27T07:32:00Z",
        "listen = \"0.0.0.0:0\"",
        "listen = \"[::1]:65535\"",
        "discovery_interfaces = [\"all\"]",
        "notify_allow = [\"0.0.0.0/0\", \"::/129\"]",
        "min_face = ",
        "fps = ",
        "mode = \"both\"",
        "transport = \"udp\"",
        "url = \"rtsp://u:p@[::1]:554/s?x#y\"",
        "unknown = 1",
    ])
}

fn image_dictionary() -> Vec<Vec<u8>> {
    let mut d: Vec<Vec<u8>> = Vec::new();
    for bytes in [
        &[0xff, 0xd8, 0xff][..],
        &[0xff, 0xd9],
        &[0xff, 0xc0, 0x00, 0x11, 0x08], // SOF0
        &[0xff, 0xc2, 0x00, 0x11, 0x08], // progressive SOF
        &[0xff, 0xc4],                   // DHT
        &[0xff, 0xdb],                   // DQT
        &[0xff, 0xda],                   // SOS
        &[0xff, 0xdd, 0x00, 0x04],       // DRI
        &[0xff, 0xe1],                   // APP1 (EXIF)
        b"Exif\0\0MM\0\x2a\0\0\0\x08",
        &[0x01, 0x12, 0x00, 0x03], // the EXIF orientation tag
        b"\x89PNG\r\n\x1a\n",
        b"IHDR",
        b"IDAT",
        b"IEND",
        b"PLTE",
        b"tRNS",
        b"acTL",
        b"fcTL",
        b"iCCP",
        b"GIF89a",
        b"NETSCAPE2.0",
        b"BM",
        b"II*\0",
        b"MM\0*",
        b"RIFF",
        b"WEBPVP8 ",
        b"WEBPVP8L",
        b"VP8X",
        b"ANIM",
        &[0xff, 0xff, 0xff, 0x7f],
        &[0x00, 0x00, 0x00, 0x00],
        &[0xff, 0xff],
        &[0x3f, 0xff],
        &[0x00, 0x01, 0x00, 0x01],
        &[0x7f, 0xff, 0x7f, 0xff],
    ] {
        d.push(bytes.to_vec());
    }
    d
}

/// The target of this name.
pub fn target(name: &str) -> Target {
    match name {
        "xml" => Target {
            name: "xml",
            corpus: &["xml", "soap", "discovery"],
            dictionary: xml_dictionary(),
            max_len: 300 * 1024,
            run: Box::new(run_xml),
        },
        "soap" => Target {
            name: "soap",
            corpus: &["soap"],
            dictionary: soap_dictionary(),
            max_len: 300 * 1024,
            run: Box::new(run_soap),
        },
        "wsse" => {
            let state = Wsse::new();
            Target {
                name: "wsse",
                corpus: &["wsse"],
                dictionary: wsse_dictionary(),
                max_len: 64 * 1024,
                run: Box::new(move |input| state.run(input)),
            }
        }
        "digest" => {
            let state = Digest::new();
            Target {
                name: "digest",
                corpus: &["digest"],
                dictionary: digest_dictionary(),
                max_len: 8 * 1024,
                run: Box::new(move |input| state.run(input)),
            }
        }
        "discovery" => {
            let device = sample_device();
            Target {
                name: "discovery",
                corpus: &["discovery"],
                dictionary: discovery_dictionary(),
                max_len: 64 * 1024,
                run: Box::new(move |input| run_discovery(&device, input)),
            }
        }
        "multipart" => {
            let runtime = runtime();
            Target {
                name: "multipart",
                corpus: &["multipart"],
                dictionary: multipart_dictionary(),
                max_len: 64 * 1024,
                run: Box::new(move |input| run_multipart(&runtime, input)),
            }
        }
        "zip" => {
            let runtime = runtime();
            Target {
                name: "zip",
                corpus: &["zip"],
                dictionary: zip_dictionary(),
                max_len: 64 * 1024,
                run: Box::new(move |input| run_zip(&runtime, input)),
            }
        }
        "config" => Target {
            name: "config",
            corpus: &["config"],
            dictionary: config_dictionary(),
            max_len: 32 * 1024,
            run: Box::new(run_config),
        },
        "image" => Target {
            name: "image",
            corpus: &["image"],
            dictionary: image_dictionary(),
            max_len: 64 * 1024,
            run: Box::new(run_image),
        },
        other => panic!("no fuzz target {other}"),
    }
}

fn refused(message: impl Into<String>) -> Outcome {
    let message = message.into();
    if message.trim().is_empty() {
        return Err("refused without a message".into());
    }
    Ok(Verdict::Refused(message))
}

// --- XML -------------------------------------------------------------------------------

use onvif::xml::{Element, Limits};

/// What a tree holds, to check it against the limits it was parsed under.
#[derive(Default)]
struct TreeSize {
    elements: usize,
    depth: usize,
    max_attributes: usize,
    /// Bytes of every name, namespace, text and attribute value.
    payload: usize,
}

fn measure(element: &Element, depth: usize, size: &mut TreeSize) {
    size.elements += 1;
    size.depth = size.depth.max(depth);
    size.max_attributes = size.max_attributes.max(element.attributes.len());
    size.payload += element.ns.len() + element.name.len() + element.text.len();
    for a in &element.attributes {
        size.payload += a.ns.len() + a.name.len() + a.value.len();
    }
    for (prefix, uri) in &element.namespaces {
        size.payload += prefix.len() + uri.len();
    }
    for child in &element.children {
        measure(child, depth + 1, size);
    }
}

/// A parsed tree within the limits it was parsed under, and no bigger than the document plus
/// `max_bytes` (what the parser may add: resolved namespace names).
fn check_tree(root: &Element, limits: &Limits, input: usize) -> Result<(), String> {
    let mut size = TreeSize::default();
    measure(root, 1, &mut size);
    if size.elements > limits.max_elements
        || size.depth > limits.max_depth
        || size.max_attributes > limits.max_attributes
    {
        return Err(format!(
            "tree beyond its limits: {} elements, depth {}, {} attributes on one element ({limits:?})",
            size.elements, size.depth, size.max_attributes
        ));
    }
    if size.payload > input + limits.max_bytes {
        return Err(format!(
            "a {input}-byte document grew to a {}-byte tree ({limits:?})",
            size.payload
        ));
    }
    Ok(())
}

/// The product's limits and tight ones, so that small inputs reach every limit too.
fn xml_limits() -> [Limits; 2] {
    [
        Limits::default(),
        Limits {
            max_bytes: 4096,
            max_depth: 6,
            max_elements: 64,
            max_attributes: 4,
        },
    ]
}

fn run_xml(input: &[u8]) -> Outcome {
    let mut verdict = None;
    for limits in xml_limits() {
        let this = match onvif::xml::parse(input, &limits) {
            Ok(root) => {
                check_tree(&root, &limits, input.len())?;
                Verdict::Accepted(format!("{}:{}", root.ns, root.name))
            }
            Err(e) => refused(e.to_string())?,
        };
        verdict.get_or_insert(this);
    }
    Ok(verdict.expect("two limits"))
}

fn run_soap(input: &[u8]) -> Outcome {
    match onvif::soap::Request::parse(input, &Limits::default()) {
        Ok(request) => {
            let _ = (request.addressing("To"), request.addressing("Action"));
            Ok(Verdict::Accepted(request.body.name))
        }
        Err(fault) => {
            let xml = fault.to_xml();
            onvif::xml::parse(xml.as_bytes(), &Limits::default())
                .map_err(|e| format!("the fault is not well-formed XML ({e}): {xml}"))?;
            refused(format!("{} {fault:?}", fault.http_status()))
        }
    }
}

// --- WS-Security -----------------------------------------------------------------------

fn users() -> onvif::auth::MemoryUsers {
    use onvif::auth::{User, UserLevel};
    onvif::auth::MemoryUsers::new([
        User {
            name: USER.into(),
            password: PASSWORD.into(),
            level: UserLevel::Operator,
        },
        User {
            name: "admin".into(),
            password: "admin-password".into(),
            level: UserLevel::Administrator,
        },
    ])
}

fn replace(haystack: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len());
    let mut rest = haystack;
    while let Some(at) = rest.windows(needle.len()).position(|w| w == needle) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(with);
        rest = &rest[at + needle.len()..];
    }
    out.extend_from_slice(rest);
    out
}

/// A WS-Security UsernameToken in a SOAP envelope: the placeholders NONCE, CREATED and DIGEST
/// are filled in (a fresh nonce, now, and the right digest for user `fuzz`) so that inputs
/// reach the verification, the nonce cache and its quota, not only the parser.
struct Wsse {
    verifier: onvif::auth::wsse::TokenVerifier,
    users: onvif::auth::MemoryUsers,
    counter: Cell<u64>,
}

impl Wsse {
    fn new() -> Self {
        Self {
            verifier: onvif::auth::wsse::TokenVerifier::new(Duration::from_secs(300)),
            users: users(),
            counter: Cell::new(0),
        }
    }

    fn run(&self, input: &[u8]) -> Outcome {
        let n = self.counter.get() + 1;
        self.counter.set(n);
        let mut nonce = [0u8; 16];
        nonce[..8].copy_from_slice(&n.to_be_bytes());
        nonce[8..].copy_from_slice(&fnv(input).to_be_bytes());
        let created = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let mut material = nonce.to_vec();
        material.extend_from_slice(created.as_bytes());
        material.extend_from_slice(PASSWORD.as_bytes());
        let engine = base64::engine::general_purpose::STANDARD;
        let digest = engine.encode(openssl::sha::sha1(&material));
        let input = replace(input, b"NONCE", engine.encode(nonce).as_bytes());
        let input = replace(&input, b"CREATED", created.as_bytes());
        let input = replace(&input, b"DIGEST", digest.as_bytes());

        let request = match onvif::soap::Request::parse(&input, &Limits::default()) {
            Ok(request) => request,
            Err(fault) => return refused(format!("{fault:?}")),
        };
        let token = match onvif::auth::wsse::UsernameToken::from_header(request.header.as_ref()) {
            Ok(Some(token)) => token,
            Ok(None) => return refused("no UsernameToken"),
            Err(failure) => return refused(failure.to_string()),
        };
        let now = chrono::Utc::now();
        match self.verifier.verify(&token, &self.users, now) {
            Ok(user) => match self.verifier.verify(&token, &self.users, now) {
                Ok(_) => Err(format!("a replayed token was accepted: {token:?}")),
                Err(_) => Ok(Verdict::Accepted(user.name)),
            },
            Err(failure) => refused(failure.to_string()),
        }
    }
}

// --- HTTP Digest -----------------------------------------------------------------------

/// An `Authorization: Digest` value checked as a snapshot GET: the placeholders NONCE (a
/// nonce the authenticator issued) and RESPONSE (the right response for the header's fields
/// and user) are filled in, so inputs reach the response check and the replay counter.
struct Digest {
    auth: onvif::auth::digest::DigestAuthenticator,
    users: onvif::auth::MemoryUsers,
}

impl Digest {
    fn new() -> Self {
        Self {
            auth: onvif::auth::digest::DigestAuthenticator::new(REALM),
            users: users(),
        }
    }

    fn nonce(&self) -> String {
        let challenge = self.auth.challenges(false).remove(0);
        let (_, rest) = challenge.split_once("nonce=\"").expect("a nonce");
        rest.split('"').next().expect("a quoted nonce").to_string()
    }

    fn run(&self, input: &[u8]) -> Outcome {
        let text = String::from_utf8_lossy(input);
        let mut header = text.replace("NONCE", &self.nonce());
        if header.contains("RESPONSE") {
            header = header.replace("RESPONSE", &expected_response(&header));
        }
        match self.auth.verify(&header, "GET", DIGEST_PATH, &self.users) {
            Ok(user) => match self.auth.verify(&header, "GET", DIGEST_PATH, &self.users) {
                Ok(_) => Err(format!("a replayed Digest header was accepted: {header}")),
                Err(_) => Ok(Verdict::Accepted(user.name)),
            },
            Err(failure) => refused(failure.to_string()),
        }
    }
}

/// The response a client would compute for the header's own fields (a naive reading of
/// them: where it disagrees with the parser's, the response is simply wrong).
fn expected_response(header: &str) -> String {
    let mut fields = std::collections::HashMap::new();
    for part in header.trim_start_matches("Digest ").split(',') {
        if let Some((key, value)) = part.split_once('=') {
            fields.insert(
                key.trim().to_ascii_lowercase(),
                value.trim().trim_matches('"').to_string(),
            );
        }
    }
    let get = |key: &str| fields.get(key).map(String::as_str).unwrap_or("");
    let sha256 = get("algorithm").eq_ignore_ascii_case("SHA-256");
    let hex = |data: String| -> String {
        let digest = if sha256 {
            openssl::hash::MessageDigest::sha256()
        } else {
            openssl::hash::MessageDigest::md5()
        };
        openssl::hash::hash(digest, data.as_bytes())
            .expect("hash")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    let password = if get("username") == "admin" {
        "admin-password"
    } else {
        PASSWORD
    };
    let ha1 = hex(format!("{}:{REALM}:{password}", get("username")));
    let ha2 = hex(format!("GET:{}", get("uri")));
    hex(format!(
        "{ha1}:{}:{}:{}:auth:{ha2}",
        get("nonce"),
        get("nc"),
        get("cnonce")
    ))
}

// --- WS-Discovery ----------------------------------------------------------------------

struct SampleProduct;

impl onvif::device::Product for SampleProduct {
    fn information(&self) -> onvif::device::DeviceInformation {
        onvif::device::DeviceInformation {
            manufacturer: "Vigil".into(),
            model: "fuzz".into(),
            firmware_version: "0".into(),
            serial_number: "0".into(),
            hardware_id: "fuzz".into(),
        }
    }

    fn video_sources(&self) -> Vec<onvif::device::VideoSource> {
        Vec::new()
    }

    fn snapshot(&self, _source_token: &str) -> Option<Vec<u8>> {
        None
    }

    fn topics(&self) -> Vec<onvif::device::TopicDescription> {
        Vec::new()
    }

    fn reboot(&self) {}
}

fn sample_device() -> Arc<onvif::Device> {
    let config = onvif::DeviceConfig {
        endpoint: uuid::Uuid::nil(),
        name: "Vigil".into(),
        location: "fuzz & <lab>".into(),
        hardware: "bench".into(),
        realm: REALM.into(),
        settings_file: None,
        discoverable: true,
        consumer_allow: onvif::events::ConsumerAllowList::parse(&["127.0.0.0/8".into()])
            .expect("allow list"),
        plain_http: true,
        event_limits: onvif::events::EventLimits::default(),
        xml_limits: Limits::default(),
        min_password_chars: 10,
        http_ports: vec![8080],
        https_ports: Vec::new(),
    };
    onvif::Device::new(config, Arc::new(SampleProduct), Arc::new(users())).expect("device")
}

fn run_discovery(device: &Arc<onvif::Device>, input: &[u8]) -> Outcome {
    match onvif::discovery::answer_datagram(device.clone(), input) {
        Some(answer) => {
            let root = onvif::xml::parse(answer.as_bytes(), &Limits::default())
                .map_err(|e| format!("the answer is not well-formed XML ({e}): {answer}"))?;
            let body = root.find(&["Body"]).and_then(|b| b.children.first());
            Ok(Verdict::Accepted(
                body.map_or("?".into(), |b| b.name.clone()),
            ))
        }
        // Silence says nothing of why: the parser's verdict tells inputs apart.
        None => refused(match onvif::xml::parse(input, &Limits::default()) {
            Ok(root) => format!("silent to a {}:{}", root.ns, root.name),
            Err(e) => format!("silent: {e}"),
        }),
    }
}

// --- Uploads ---------------------------------------------------------------------------

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Sends `body` as an enrolment upload with this Content-Type, through the route's own form
/// reading and unpacking: 200 is success, 4xx a refusal with its message, anything else a
/// finding.
fn upload(runtime: &tokio::runtime::Runtime, content_type: &[u8], body: Vec<u8>) -> Outcome {
    use http_body_util::BodyExt as _;
    let Ok(content_type) = hyper::header::HeaderValue::from_bytes(content_type) else {
        return refused("not a valid header value (the HTTP server refuses it)");
    };
    let request = hyper::Request::builder()
        .method("POST")
        .uri("/api/v1/watchlists/w/enrolments")
        .header(hyper::header::CONTENT_TYPE, content_type)
        .header(hyper::header::CONTENT_LENGTH, body.len())
        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
        .expect("request");
    let (status, text) = runtime.block_on(async {
        let response = web::upload_answer(request, UPLOAD_BUDGET).await;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        (status, String::from_utf8_lossy(&body).into_owned())
    });
    match status {
        200 => Ok(Verdict::Accepted(text)),
        400..=499 => refused(format!("{status} {text}")),
        _ => Err(format!("answered {status}: {text}")),
    }
}

/// `Content-Type: ...` CRLF CRLF body (the corpus's form): the header is fuzzed too.
fn run_multipart(runtime: &tokio::runtime::Runtime, input: &[u8]) -> Outcome {
    let (head, body) = match input.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(at) => (&input[..at], &input[at + 4..]),
        None => (&b"multipart/form-data; boundary=x"[..], input),
    };
    let content_type = match head.iter().position(|b| *b == b':') {
        Some(at) if head[..at].eq_ignore_ascii_case(b"content-type") => head[at + 1..].trim_ascii(),
        _ => head,
    };
    upload(runtime, content_type, body.to_vec())
}

const ZIP_BOUNDARY: &str = "----VigilFuzzZip5b0c1e7d9a3f";

/// The input as a zip file of a browser's upload.
fn run_zip(runtime: &tokio::runtime::Runtime, input: &[u8]) -> Outcome {
    let mut body = format!(
        "--{ZIP_BOUNDARY}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"batch.zip\"\r\n\
         Content-Type: application/zip\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(input);
    body.extend_from_slice(format!("\r\n--{ZIP_BOUNDARY}--\r\n").as_bytes());
    let content_type = format!("multipart/form-data; boundary={ZIP_BOUNDARY}");
    upload(runtime, content_type.as_bytes(), body)
}

// --- Configuration and images ----------------------------------------------------------

fn run_config(input: &[u8]) -> Outcome {
    let text = String::from_utf8_lossy(input);
    match vigil::config::Config::parse(&text, Path::new("fuzz.toml")) {
        Ok(config) => Ok(Verdict::Accepted(format!(
            "{} camera(s)",
            config.cameras.len()
        ))),
        Err(e) => refused(e.to_string()),
    }
}

fn run_image(input: &[u8]) -> Outcome {
    match vigil::vision::image::decode_rgb(input, MAX_PIXELS) {
        Ok(image) => {
            let pixels = u64::from(image.width()) * u64::from(image.height());
            if pixels > MAX_PIXELS || pixels == 0 {
                return Err(format!(
                    "decoded {}x{} past the limit of {MAX_PIXELS} pixels",
                    image.width(),
                    image.height()
                ));
            }
            Ok(Verdict::Accepted("decoded".into()))
        }
        Err(e) => refused(e.to_string()),
    }
}

// ---------------------------------------------------------------------------------------
// Running inputs

thread_local! {
    /// Set while this thread runs fuzz inputs: its panics are recorded, not printed.
    static QUIET: Cell<bool> = const { Cell::new(false) };
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Installs (once) a panic hook that keeps fuzzed panics quiet and records their message;
/// every other panic (a test's assertion) is printed as usual.
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if QUIET.with(Cell::get) {
                let location = info
                    .location()
                    .map(|l| format!(" at {}:{}", l.file(), l.line()))
                    .unwrap_or_default();
                let message = info
                    .payload()
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| info.payload().downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "panic".into());
                LAST_PANIC.with(|p| *p.borrow_mut() = Some(format!("{message}{location}")));
            } else {
                previous(info);
            }
        }));
    });
}

/// The input being run, and since when (`None`: none is).
type Current = Arc<Mutex<(Option<Instant>, Vec<u8>)>>;

/// Watches the input being run; one that runs past `hang` is written as a finding and the
/// process stopped (a hang cannot be caught any other way).
struct Watchdog {
    current: Current,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watchdog {
    fn start(target: &'static str, hang: Duration) -> Self {
        let current: Current = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (current, stop) = (current.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(200));
                    let guard = current.lock().unwrap_or_else(|e| e.into_inner());
                    if guard.0.is_some_and(|started| started.elapsed() > hang) {
                        let path = keep_finding(target, &guard.1, &format!("hang: over {hang:?}"));
                        eprintln!(
                            "fuzz {target}: an input ran over {hang:?}: kept in {}",
                            path.display()
                        );
                        std::process::abort();
                    }
                }
            })
        };
        Self {
            current,
            stop,
            thread: Some(thread),
        }
    }

    fn begin(&self, input: &[u8]) {
        let mut guard = self.current.lock().unwrap_or_else(|e| e.into_inner());
        guard.1.clear();
        guard.1.extend_from_slice(input);
        guard.0 = Some(Instant::now());
    }

    fn end(&self) {
        self.current.lock().unwrap_or_else(|e| e.into_inner()).0 = None;
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Writes a finding to `target/fuzz-findings/<target>/<hash>` (and why, beside it).
pub fn keep_finding(target: &str, input: &[u8], why: &str) -> PathBuf {
    let dir = findings_dir().join(target);
    let path = dir.join(format!("{:016x}", fnv(input)));
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(&path, input);
    let _ = std::fs::write(path.with_extension("txt"), format!("{why}\n"));
    path
}

/// Runs inputs through one target, each under `catch_unwind`, timed, watched for hangs.
pub struct Runner {
    target: Target,
    slow: Duration,
    watchdog: Watchdog,
}

impl Runner {
    /// `slow`: an input taking longer is a finding; one taking 30 times that stops the run.
    pub fn new(name: &str, slow: Duration) -> Self {
        install_panic_hook();
        let target = target(name);
        let watchdog = Watchdog::start(target.name, (slow * 30).max(Duration::from_secs(30)));
        Self {
            target,
            slow,
            watchdog,
        }
    }

    pub fn name(&self) -> &'static str {
        self.target.name
    }

    /// One input: its verdict, or why it is a finding.
    pub fn run(&mut self, input: &[u8]) -> Outcome {
        self.watchdog.begin(input);
        QUIET.with(|q| q.set(true));
        let started = Instant::now();
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| self.target.run(input)));
        let took = started.elapsed();
        QUIET.with(|q| q.set(false));
        self.watchdog.end();
        match result {
            Err(_) => Err(format!(
                "panic: {}",
                LAST_PANIC
                    .with(|p| p.borrow_mut().take())
                    .unwrap_or_default()
            )),
            Ok(_) if took > self.slow => Err(format!("slow: {took:?} (bound {:?})", self.slow)),
            Ok(outcome) => outcome,
        }
    }

    /// The seed corpus of the target: every file of its corpus folders, sorted.
    pub fn corpus(&self) -> Vec<(PathBuf, Vec<u8>)> {
        let mut files = Vec::new();
        for folder in self.target.corpus {
            files.extend(read_dir(&repo().join("tests/fuzz/corpus").join(folder)));
        }
        files
    }

    /// The kept findings of the target (`tests/fuzz/regressions/<target>/`).
    pub fn regressions(&self) -> Vec<(PathBuf, Vec<u8>)> {
        read_dir(&repo().join("tests/fuzz/regressions").join(self.target.name))
    }

    /// A bounded fuzz run: `inputs` mutated inputs from the corpus, the same for the same seed.
    pub fn fuzz(&mut self, inputs: u64, seed: u64) -> Report {
        let mut rng = Rng::new(seed ^ fnv(self.target.name.as_bytes()));
        let mut pool: Vec<Vec<u8>> = self.corpus().into_iter().map(|(_, b)| b).collect();
        assert!(!pool.is_empty(), "{}: no seed corpus", self.target.name);
        let seeds = pool.len();
        let dictionary = self.target.dictionary.clone();
        let max_len = self.target.max_len;
        let mut seen: HashSet<String> = HashSet::new();
        let mut report = Report {
            target: self.target.name,
            ..Report::default()
        };
        let verbose = std::env::var_os("VIGIL_FUZZ_VERBOSE").is_some();
        let started = Instant::now();
        for _ in 0..inputs {
            // Half the time a seed, so that inputs stay near real messages however many
            // broken ones joined the pool.
            let base = if rng.chance(2) {
                &pool[rng.below(seeds)]
            } else {
                &pool[rng.below(pool.len())]
            };
            let input = mutate(base, &pool, &dictionary, max_len, &mut rng);
            report.inputs += 1;
            match self.run(&input) {
                Ok(verdict) => {
                    let (text, accepted) = match &verdict {
                        Verdict::Accepted(t) => (t, true),
                        Verdict::Refused(t) => (t, false),
                    };
                    if accepted {
                        report.accepted += 1;
                    }
                    let signature = signature(accepted, text);
                    if !seen.contains(&signature) {
                        if verbose {
                            eprintln!("{}: new outcome {signature}", self.target.name);
                        }
                        seen.insert(signature);
                        if pool.len() < 4096 {
                            pool.push(input);
                        }
                    }
                }
                Err(why) => {
                    let path = keep_finding(self.target.name, &input, &why);
                    report.findings.push((why, path));
                }
            }
        }
        report.elapsed = started.elapsed();
        report.outcomes = seen.len();
        report
    }
}

/// What a run did.
#[derive(Debug, Default)]
pub struct Report {
    pub target: &'static str,
    pub inputs: u64,
    pub accepted: u64,
    /// Distinct outcomes seen (how far the inputs reached).
    pub outcomes: usize,
    pub elapsed: Duration,
    /// Why, and where the input is kept.
    pub findings: Vec<(String, PathBuf)>,
}

impl Report {
    pub fn per_second(&self) -> f64 {
        self.inputs as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:<10} {:>8} inputs {:>8.2} s {:>9.0} inputs/s {:>7} accepted {:>5} outcomes {:>3} findings",
            self.target,
            self.inputs,
            self.elapsed.as_secs_f64(),
            self.per_second(),
            self.accepted,
            self.outcomes,
            self.findings.len()
        )
    }
}

/// An outcome's text without its numbers and the excerpt of the input some messages quote
/// (TOML's `| line | ^ what`), to tell new outcomes.
fn signature(accepted: bool, text: &str) -> String {
    let text = match (text.find(" | "), text.rfind('^')) {
        (Some(from), Some(to)) if from < to => format!("{}{}", &text[..from], &text[to..]),
        _ => text.to_string(),
    };
    let mut out = String::from(if accepted { "+" } else { "-" });
    for c in text.chars().take(80) {
        out.push(if c.is_ascii_digit() { '#' } else { c });
    }
    out
}

fn read_dir(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .filter(|p| p.extension().is_none_or(|e| e != "md"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).expect("readable corpus file");
            (p, bytes)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Mutations

/// Numbers a mutation puts in place of a run of digits.
const NUMBERS: &[&str] = &[
    "0",
    "1",
    "-1",
    "255",
    "256",
    "65535",
    "65536",
    "2147483647",
    "2147483648",
    "4294967295",
    "4294967296",
    "9223372036854775807",
    "18446744073709551615",
    "18446744073709551616",
    "1e999",
    "0.0",
    "NaN",
];

const INTERESTING: &[u8] = &[
    0x00, 0x01, 0x7f, 0x80, 0xff, 0xfe, b'<', b'>', b'"', b'\'', b'&', b';', b'=', b',', b'/',
    b'\\', b':', b'\n', b'\r', b' ', b'[', b']',
];

/// One to eight stacked mutations of `base`.
pub fn mutate(
    base: &[u8],
    pool: &[Vec<u8>],
    dictionary: &[Vec<u8>],
    max_len: usize,
    rng: &mut Rng,
) -> Vec<u8> {
    let mut data = base.to_vec();
    let most = if rng.chance(4) { 8 } else { 3 };
    let rounds = 1 + rng.below(most);
    for _ in 0..rounds {
        mutate_once(&mut data, pool, dictionary, rng);
        if data.len() > max_len {
            data.truncate(max_len);
        }
    }
    data
}

fn mutate_once(data: &mut Vec<u8>, pool: &[Vec<u8>], dictionary: &[Vec<u8>], rng: &mut Rng) {
    let len = data.len();
    let at = rng.below(len + 1);
    let span = |rng: &mut Rng, from: usize| {
        let room = len - from;
        if rng.chance(8) {
            rng.below(room + 1)
        } else {
            rng.below(room.min(16) + 1)
        }
    };
    match rng.below(12) {
        // Bit flips.
        0 if len > 0 => {
            for _ in 0..1 + rng.below(4) {
                let i = rng.below(len);
                data[i] ^= 1 << rng.below(8);
            }
        }
        // An interesting byte.
        1 if len > 0 => data[rng.below(len)] = INTERESTING[rng.below(INTERESTING.len())],
        // Random bytes inserted.
        2 => {
            let bytes: Vec<u8> = (0..1 + rng.below(8))
                .map(|_| rng.next_u64() as u8)
                .collect();
            data.splice(at..at, bytes);
        }
        // A range deleted.
        3 if len > 0 => {
            let n = span(rng, at.min(len));
            data.drain(at.min(len)..at.min(len) + n);
        }
        // A range duplicated elsewhere.
        4 if len > 0 => {
            let from = rng.below(len);
            let n = span(rng, from);
            let chunk = data[from..from + n].to_vec();
            data.splice(at..at, chunk);
        }
        // Spliced with another input: this one's head, the other's tail.
        5 => {
            let other = &pool[rng.below(pool.len())];
            let from = rng.below(other.len() + 1);
            data.truncate(at);
            data.extend_from_slice(&other[from..]);
        }
        // A dictionary token inserted, or written over what is there.
        6 | 7 if !dictionary.is_empty() => {
            let token = &dictionary[rng.below(dictionary.len())];
            if rng.chance(2) {
                data.splice(at..at, token.iter().copied());
            } else {
                let end = (at + token.len()).min(len);
                data.splice(at..end, token.iter().copied());
            }
        }
        // Truncated.
        8 => data.truncate(at),
        // A short range repeated many times (deep nesting, long runs).
        9 if len > 0 => {
            let from = rng.below(len);
            let n = 1 + rng.below((len - from).min(12));
            let chunk = data[from..from + n].to_vec();
            let most = if rng.chance(4) { 2000 } else { 64 };
            let times = 2 + rng.below(most);
            let repeated: Vec<u8> = chunk.iter().copied().cycle().take(n * times).collect();
            data.splice(from..from, repeated);
        }
        // A run of digits swapped for an extreme number.
        10 => {
            if let Some(start) = (at..len).find(|&i| data[i].is_ascii_digit()) {
                let end = (start..len)
                    .find(|&i| !data[i].is_ascii_digit())
                    .unwrap_or(len);
                let number = NUMBERS[rng.below(NUMBERS.len())];
                data.splice(start..end, number.bytes());
            }
        }
        // A byte added to or taken from (lengths and counts in binary formats).
        _ if len > 0 => {
            let i = rng.below(len);
            let delta = 1 + rng.below(16) as u8;
            data[i] = if rng.chance(2) {
                data[i].wrapping_add(delta)
            } else {
                data[i].wrapping_sub(delta)
            };
        }
        _ => data.push(rng.next_u64() as u8),
    }
}
