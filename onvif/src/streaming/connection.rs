//! One RTSP connection: reads requests within the limits and timeouts, answers them in
//! order, and carries interleaved RTP for the sessions it set up.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::OwnedSemaphorePermit;
use tokio::task::JoinSet;
use tokio::time::{timeout_at, Instant};

use super::framing::{next_frame, Frame, FramingError};
use super::methods::{self, Context};
use super::sessions::{Outbox, OutboxReader};
use super::tunnel::{self, Base64Stream, Opening, Tunnel};
use super::Shared;

/// Responses and interleaved packets queued for one connection's writer.
const OUT_QUEUE: usize = 256;

static NEXT_CONNECTION: AtomicU64 = AtomicU64::new(1);

/// Accepts connections until aborted; the connections' tasks live in a set owned here, so
/// aborting this stops them too.
pub(super) async fn accept(shared: Arc<Shared>, listener: TcpListener) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => admit(&shared, &mut connections, stream, peer),
                Err(error) => {
                    tracing::warn!(%error, "RTSP accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

fn admit(shared: &Arc<Shared>, connections: &mut JoinSet<()>, stream: TcpStream, peer: SocketAddr) {
    let Some(admitted) = Admission::new(shared, peer) else {
        // Debug only: a flood of connections must not flood the log too.
        tracing::debug!(%peer, "RTSP connection refused: too many connections");
        connections.spawn(refuse(stream));
        return;
    };
    let shared = shared.clone();
    connections.spawn(async move {
        serve(shared, stream, peer).await;
        drop(admitted);
    });
}

/// A connection's place under the total and per-address limits, given back on drop.
struct Admission {
    shared: Arc<Shared>,
    peer: IpAddr,
    _permit: OwnedSemaphorePermit,
}

impl Admission {
    fn new(shared: &Arc<Shared>, peer: SocketAddr) -> Option<Self> {
        let mut per_address = shared.per_address.lock();
        let open = per_address.get(&peer.ip()).copied().unwrap_or(0);
        if open >= shared.config.max_connections_per_address {
            return None;
        }
        let permit = shared.connections.clone().try_acquire_owned().ok()?;
        per_address.insert(peer.ip(), open + 1);
        Some(Self {
            shared: shared.clone(),
            peer: peer.ip(),
            _permit: permit,
        })
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut per_address = self.shared.per_address.lock();
        if let Some(open) = per_address.get_mut(&self.peer) {
            *open -= 1;
            if *open == 0 {
                per_address.remove(&self.peer);
            }
        }
    }
}

async fn refuse(mut stream: TcpStream) {
    let refusal = b"RTSP/1.0 503 Service Unavailable\r\nCSeq: 0\r\nConnection: close\r\n\r\n";
    let _ =
        tokio::time::timeout(std::time::Duration::from_secs(1), stream.write_all(refusal)).await;
}

async fn serve(shared: Arc<Shared>, stream: TcpStream, peer: SocketAddr) {
    let _ = stream.set_nodelay(true);
    let connection = NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed);
    let (reader, writer) = stream.into_split();
    let (out, queue) = Outbox::new(OUT_QUEUE);
    let writing = tokio::spawn(write_all(writer, queue));
    let mut input = Input {
        reader,
        buffer: Vec::with_capacity(1_024),
        base64: None,
    };
    let context = Context {
        shared: shared.clone(),
        peer,
        connection,
        out,
    };
    let limits = &shared.config.limits;
    let deadline = Instant::now() + limits.request_timeout;
    let opening = loop {
        if let Some(opening) = tunnel::opening(&input.buffer) {
            break Some(opening);
        }
        if input.read(deadline).await != Read::Data {
            break None;
        }
    };
    match opening {
        Some(Opening::Rtsp) => requests(&context, &mut input).await,
        Some(Opening::Get) => tunnel_get(&context, &mut input).await,
        Some(Opening::Post) => tunnel_post(&context, &mut input).await,
        None => {}
    }
    // Interleaved sessions end with their connection; UDP ones live until TEARDOWN or expiry.
    shared.sessions.lock().close_connection(connection);
    drop(context);
    let abort = writing.abort_handle();
    if tokio::time::timeout(limits.request_timeout, writing)
        .await
        .is_err()
    {
        abort.abort();
    }
}

/// A connection's incoming bytes, base64-decoded on a tunnel's POST.
struct Input {
    reader: OwnedReadHalf,
    buffer: Vec<u8>,
    base64: Option<Base64Stream>,
}

/// How a read ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Read {
    Data,
    TimedOut,
    /// Closed by the client, failed, or bad base64.
    Ended,
}

impl Input {
    /// Reads more into the buffer before `deadline`.
    async fn read(&mut self, deadline: Instant) -> Read {
        let mut chunk = [0u8; 4_096];
        let n = match timeout_at(deadline, self.reader.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => n,
            Ok(_) => return Read::Ended,
            Err(_) => return Read::TimedOut,
        };
        match &mut self.base64 {
            None => self.buffer.extend_from_slice(&chunk[..n]),
            Some(stream) => {
                if stream.feed(&chunk[..n], &mut self.buffer).is_err() {
                    return Read::Ended;
                }
            }
        }
        Read::Data
    }
}

/// Answers requests in order until the connection ends, breaks a limit or goes quiet.
async fn requests(context: &Context, input: &mut Input) {
    let limits = &context.shared.config.limits;
    // The deadline of the request being read: set by its first byte, or an idle limit.
    let mut deadline = Instant::now() + limits.idle_timeout;
    loop {
        match next_frame(&input.buffer, limits) {
            Ok(Some((frame, used))) => {
                input.buffer.drain(..used);
                context.shared.sessions.lock().heard_on(context.connection);
                if let Frame::Request(request) = frame {
                    let response = methods::answer(context, &request);
                    if !context.out.send(response).await {
                        return;
                    }
                }
                deadline = idle_deadline(context);
                continue;
            }
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(peer = %context.peer, %error, "RTSP request refused");
                let _ = context.out.send(methods::bad_request(error)).await;
                return;
            }
        }
        if !input.buffer.is_empty() {
            deadline = deadline.min(Instant::now() + limits.request_timeout);
        }
        if input.read(deadline).await != Read::Data {
            tracing::debug!(peer = %context.peer, "RTSP connection ended or timed out");
            return;
        }
    }
}

/// A tunnel's GET: answers 200 and then carries what its POSTs' requests are answered with,
/// for as long as the client keeps it and it is used.
async fn tunnel_get(context: &Context, input: &mut Input) {
    let Some(cookie) = tunnel_head(context, input).await else {
        return;
    };
    let tunnel = Tunnel {
        connection: context.connection,
        peer: context.peer.ip(),
        out: context.out.clone(),
    };
    if !context.shared.tunnels.lock().open(&cookie, tunnel) {
        let _ = context
            .out
            .send(methods::bad_request(FramingError::Malformed))
            .await;
        return;
    }
    if context.out.send(tunnel::GET_ANSWER.to_vec()).await {
        // Nothing more comes on a GET: it lives while its sessions do, or the idle limit.
        loop {
            input.buffer.clear();
            match input.read(idle_deadline(context)).await {
                Read::Data => {}
                Read::TimedOut if has_sessions(context) => {}
                Read::TimedOut | Read::Ended => break,
            }
        }
    }
    context
        .shared
        .tunnels
        .lock()
        .close(&cookie, context.connection);
}

/// A tunnel's POST: its body's requests are answered on the GET with the same cookie.
async fn tunnel_post(context: &Context, input: &mut Input) {
    let Some(cookie) = tunnel_head(context, input).await else {
        return;
    };
    let found = context
        .shared
        .tunnels
        .lock()
        .find(&cookie, context.peer.ip());
    let Some(tunnel) = found else {
        tracing::warn!(peer = %context.peer, "RTSP tunnel POST without its GET");
        return;
    };
    let encoded = std::mem::take(&mut input.buffer);
    let mut stream = Base64Stream::default();
    if stream.feed(&encoded, &mut input.buffer).is_err() {
        return;
    }
    input.base64 = Some(stream);
    let through = Context {
        shared: context.shared.clone(),
        peer: context.peer,
        connection: tunnel.connection,
        out: tunnel.out,
    };
    requests(&through, input).await;
}

/// The cookie of a tunnel request, its head taken from the buffer; a bad head is answered
/// 400.
async fn tunnel_head(context: &Context, input: &mut Input) -> Option<String> {
    let limits = &context.shared.config.limits;
    let deadline = Instant::now() + limits.request_timeout;
    loop {
        match tunnel::cookie(&input.buffer, limits) {
            Ok(Some((cookie, used))) => {
                input.buffer.drain(..used);
                return Some(cookie);
            }
            Ok(None) if input.read(deadline).await == Read::Data => {}
            Ok(None) => return None,
            Err(error) => {
                tracing::warn!(peer = %context.peer, %error, "RTSP tunnel refused");
                let _ = context.out.send(tunnel_refusal(error)).await;
                return None;
            }
        }
    }
}

fn tunnel_refusal(error: FramingError) -> Vec<u8> {
    format!(
        "HTTP/1.0 400 Bad Request\r\nConnection: close\r\nContent-Type: text/plain\r\n\r\n{error}"
    )
    .into_bytes()
}

fn has_sessions(context: &Context) -> bool {
    context
        .shared
        .sessions
        .lock()
        .on_connection(context.connection)
}

/// How long a quiet connection may stay: as long as a session of it would, else the idle
/// limit.
fn idle_deadline(context: &Context) -> Instant {
    let config = &context.shared.config;
    let has_session = context
        .shared
        .sessions
        .lock()
        .on_connection(context.connection);
    let quiet = if has_session {
        config.session_timeout
    } else {
        config.limits.idle_timeout
    };
    Instant::now() + quiet
}

async fn write_all(mut writer: OwnedWriteHalf, mut queue: OutboxReader) {
    while let Some(bytes) = queue.recv().await {
        if writer.write_all(&bytes).await.is_err() {
            break;
        }
    }
    let _ = writer.shutdown().await;
}
