//! One RTSP connection: reads requests within the limits and timeouts, answers them in
//! order, and carries interleaved RTP for the sessions it set up.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tokio::time::{timeout_at, Instant};

use super::framing::{next_frame, Frame};
use super::methods::{self, Context};
use super::Shared;

/// Responses and interleaved packets queued for one connection's writer.
const OUT_QUEUE: usize = 256;

static NEXT_CONNECTION: AtomicU64 = AtomicU64::new(1);

pub(super) async fn accept(shared: Arc<Shared>, listener: TcpListener) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "RTSP accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(admitted) = Admission::new(&shared, peer) else {
            tracing::warn!(%peer, "RTSP connection refused: too many connections");
            tokio::spawn(refuse(stream));
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            serve(shared, stream, peer).await;
            drop(admitted);
        });
    }
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
        let open = per_address.entry(peer.ip()).or_insert(0);
        if *open >= shared.config.max_connections_per_address {
            return None;
        }
        let permit = shared.connections.clone().try_acquire_owned().ok()?;
        *open += 1;
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
    let _ = stream
        .write_all(b"RTSP/1.0 503 Service Unavailable\r\nCSeq: 0\r\nConnection: close\r\n\r\n")
        .await;
}

async fn serve(shared: Arc<Shared>, stream: TcpStream, peer: SocketAddr) {
    let _ = stream.set_nodelay(true);
    let connection = NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed);
    let (mut reader, writer) = stream.into_split();
    let (out, queue) = mpsc::channel::<Vec<u8>>(OUT_QUEUE);
    let writing = tokio::spawn(write_all(writer, queue));
    let context = Context {
        shared: shared.clone(),
        peer,
        connection,
        out: out.clone(),
    };
    let limits = &shared.config.limits;
    let mut buffer: Vec<u8> = Vec::with_capacity(1_024);
    // The deadline of the request being read: set by its first byte, or an idle limit.
    let mut deadline = Instant::now() + limits.idle_timeout;
    loop {
        match next_frame(&buffer, limits) {
            Ok(Some((frame, used))) => {
                buffer.drain(..used);
                shared.sessions.lock().heard_on(connection);
                if let Frame::Request(request) = frame {
                    let response = methods::answer(&context, &request);
                    if out.send(response).await.is_err() {
                        break;
                    }
                }
                deadline = idle_deadline(&context);
                continue;
            }
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(%peer, %error, "RTSP request refused");
                let _ = out.send(methods::bad_request(error)).await;
                break;
            }
        }
        if !buffer.is_empty() {
            deadline = deadline.min(Instant::now() + limits.request_timeout);
        }
        match timeout_at(deadline, reader.read_buf(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(_)) => {}
            Err(_) => {
                tracing::debug!(%peer, "RTSP connection timed out");
                break;
            }
        }
    }
    drop(context);
    drop(out);
    // Interleaved sessions end with their connection; UDP ones live until TEARDOWN or expiry.
    shared.sessions.lock().close_connection(connection);
    let abort = writing.abort_handle();
    if tokio::time::timeout(limits.request_timeout, writing)
        .await
        .is_err()
    {
        abort.abort();
    }
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

async fn write_all(mut writer: OwnedWriteHalf, mut queue: mpsc::Receiver<Vec<u8>>) {
    while let Some(bytes) = queue.recv().await {
        if writer.write_all(&bytes).await.is_err() {
            break;
        }
    }
    let _ = writer.shutdown().await;
}
