//! The answer to each RTSP method, authentication first.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use rtsp_types::headers::transport::{
    RtpLowerTransport, RtpProfile, RtpTransport, RtpTransportParameters,
};
use rtsp_types::headers::{self as h, Session as SessionHeader, Transport, Transports};
use rtsp_types::{Method, Request, Response, StatusCode, Url, Version};

use super::framing::FramingError;
use super::rtp::{RtpSender, PAYLOAD_TYPE};
use super::sessions::{
    random_u32, Delivery, MountKind, Outbox, Session, SessionError, Track, TrackKind,
};
use super::video::VIDEO_PAYLOAD_TYPE;
use super::{Shared, MEDIA_PREFIX, METADATA_TRACK, MOUNT_PREFIX, TRACK};
use crate::auth::{AccessClass, AuthFailure, User};

const PUBLIC: &str =
    "OPTIONS, DESCRIBE, SETUP, PLAY, PAUSE, TEARDOWN, GET_PARAMETER, SET_PARAMETER";

/// The connection a request came on.
pub(super) struct Context {
    pub shared: Arc<Shared>,
    pub peer: SocketAddr,
    pub connection: u64,
    pub out: Outbox,
}

/// Why a request is refused, and so its status.
#[derive(Debug, thiserror::Error)]
pub(super) enum Refusal {
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("authentication required")]
    Unauthorized { stale: bool },
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    #[error("no such stream")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("session not found")]
    SessionNotFound,
    #[error("no acceptable transport (RTP/AVP unicast with client_port, or RTP/AVP/TCP)")]
    UnsupportedTransport,
    #[error("session limit reached")]
    Full,
    #[error("parameters are not supported")]
    ParameterNotUnderstood,
    #[error("only RTSP/1.0 is served")]
    Version,
    #[error("the session is already set up")]
    AlreadySetUp,
    #[error("only application/sdp is offered")]
    NotAcceptable,
    #[error("the camera's video has not come yet")]
    NoVideoYet,
}

impl Refusal {
    fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BadRequest,
            Self::Unauthorized { .. } => StatusCode::Unauthorized,
            Self::Forbidden(_) => StatusCode::Forbidden,
            Self::NotFound => StatusCode::NotFound,
            Self::MethodNotAllowed => StatusCode::MethodNotAllowed,
            Self::SessionNotFound => StatusCode::SessionNotFound,
            Self::UnsupportedTransport => StatusCode::UnsupportedTransport,
            Self::Full => StatusCode::NotEnoughBandwidth,
            Self::ParameterNotUnderstood => StatusCode::ParameterNotUnderstood,
            Self::Version => StatusCode::RTSPVersionNotSupported,
            Self::AlreadySetUp => StatusCode::AggregateOperationNotAllowed,
            Self::NotAcceptable => StatusCode::NotAcceptable,
            Self::NoVideoYet => StatusCode::ServiceUnavailable,
        }
    }
}

impl From<SessionError> for Refusal {
    fn from(error: SessionError) -> Self {
        match error {
            SessionError::NotFound => Self::SessionNotFound,
            SessionError::Full(_) => Self::Full,
        }
    }
}

type Answer = Result<rtsp_types::ResponseBuilder, Refusal>;

/// The serialised response to one request.
pub(super) fn answer(context: &Context, request: &Request<Vec<u8>>) -> Vec<u8> {
    let (builder, body) = match respond(context, request) {
        Ok((builder, body)) => (builder, body),
        Err(refusal) => {
            // Every client's first request is refused for credentials: not worth a line.
            tracing::debug!(peer = %context.peer, method = ?request.method(), %refusal, "RTSP request refused");
            (refused(context, &refusal), Vec::new())
        }
    };
    let builder = match request.header(&h::CSEQ) {
        Some(cseq) => builder.header(h::CSEQ, cseq.as_str()),
        None => builder,
    };
    serialize(builder.build(body))
}

/// The answer to bytes that are not a request: 400, and the connection closes.
pub(super) fn bad_request(error: FramingError) -> Vec<u8> {
    let response = builder(StatusCode::BadRequest)
        .header(h::CONNECTION, "close")
        .build(error.to_string().into_bytes());
    serialize(response)
}

fn serialize(response: Response<Vec<u8>>) -> Vec<u8> {
    let mut bytes = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = response.write(&mut bytes);
    bytes
}

fn builder(status: StatusCode) -> rtsp_types::ResponseBuilder {
    Response::builder(Version::V1_0, status).header(h::SERVER, "Vigil")
}

fn refused(context: &Context, refusal: &Refusal) -> rtsp_types::ResponseBuilder {
    let builder = builder(refusal.status());
    match refusal {
        Refusal::Unauthorized { stale } => builder.header(
            h::WWW_AUTHENTICATE,
            context.shared.device.auth.rtsp_challenge(*stale),
        ),
        Refusal::MethodNotAllowed => builder.header(h::ALLOW, PUBLIC),
        Refusal::NoVideoYet => builder.header(h::RETRY_AFTER, "5"),
        _ => builder,
    }
}

fn respond(
    context: &Context,
    request: &Request<Vec<u8>>,
) -> Result<(rtsp_types::ResponseBuilder, Vec<u8>), Refusal> {
    if request.version() != Version::V1_0 {
        return Err(Refusal::Version);
    }
    if *request.method() == Method::Options {
        return Ok((
            builder(StatusCode::Ok).header(h::PUBLIC, PUBLIC),
            Vec::new(),
        ));
    }
    let user = authenticate(context, request)?;
    let empty = |answer: Answer| answer.map(|b| (b, Vec::new()));
    // Only these name a stream; the others act on the session named, whatever the URI.
    match request.method() {
        Method::Describe => describe(context, request, &Mount::of(context, request)?),
        Method::Setup => empty(setup(
            context,
            request,
            &Mount::of(context, request)?,
            &user,
        )),
        Method::Play => empty(play(context, request, &Mount::of(context, request)?, &user)),
        Method::Pause => empty(with_session(context, request, &user, |s| s.playing = false)),
        Method::Teardown => empty(teardown(context, request, &user)),
        Method::GetParameter => empty(keep_alive(context, request, &user)),
        Method::SetParameter if request.body().is_empty() => {
            empty(keep_alive(context, request, &user))
        }
        Method::SetParameter => Err(Refusal::ParameterNotUnderstood),
        _ => Err(Refusal::MethodNotAllowed),
    }
}

/// The caller, by Digest, if its level may read media.
fn authenticate(context: &Context, request: &Request<Vec<u8>>) -> Result<User, Refusal> {
    let authorization = request.header(&h::AUTHORIZATION).map(|v| v.as_str());
    let path = request.request_uri().map_or("*", |uri| uri.path());
    let method: &str = request.method().into();
    let auth = &context.shared.device.auth;
    match auth.rtsp_caller(authorization, method, path, context.peer.ip()) {
        Ok(Some(user)) if AccessClass::ReadMedia.allows(user.level) => Ok(user),
        Ok(Some(_)) => Err(Refusal::Forbidden("user level too low")),
        Ok(None) => Err(Refusal::Unauthorized { stale: false }),
        Err(AuthFailure::Stale) => Err(Refusal::Unauthorized { stale: true }),
        Err(AuthFailure::RateLimited) => Err(Refusal::Forbidden("too many failed attempts")),
        Err(AuthFailure::MustChangePassword) => {
            Err(Refusal::Forbidden("the password must be changed first"))
        }
        Err(AuthFailure::Malformed(reason)) if is_digest(authorization) => {
            Err(Refusal::BadRequest(reason.into()))
        }
        Err(_) => Err(Refusal::Unauthorized { stale: false }),
    }
}

fn is_digest(authorization: Option<&str>) -> bool {
    authorization.is_some_and(|a| {
        a.trim_start()
            .get(..6)
            .is_some_and(|s| s.eq_ignore_ascii_case("digest"))
    })
}

/// A source's mount as a request URI names it: `/onvif/metadata/<token>/` or
/// `/onvif/media/<token>/`, or one of its tracks (`.../<token>/track1`).
struct Mount {
    kind: MountKind,
    token: String,
    /// The track named, if one is.
    track: Option<u8>,
    /// `rtsp://host:port/onvif/<kind>/<token>/` as the client addressed us.
    base: Url,
}

impl Mount {
    fn of(context: &Context, request: &Request<Vec<u8>>) -> Result<Self, Refusal> {
        let uri = request.request_uri().ok_or(Refusal::NotFound)?;
        let (kind, prefix, rest) = [
            (MountKind::Metadata, MOUNT_PREFIX),
            (MountKind::Media, MEDIA_PREFIX),
        ]
        .into_iter()
        .find_map(|(kind, prefix)| Some((kind, prefix, uri.path().strip_prefix(prefix)?)))
        .ok_or(Refusal::NotFound)?;
        let (token, track) = rest.split_once('/').unwrap_or((rest, ""));
        let track = match (kind, track) {
            (_, "") => None,
            (_, TRACK) => Some(1),
            (MountKind::Media, METADATA_TRACK) => Some(2),
            _ => return Err(Refusal::NotFound),
        };
        if token.is_empty() {
            return Err(Refusal::NotFound);
        }
        let sources = context.shared.device.product.video_sources();
        if !sources.iter().any(|s| s.token == token) {
            return Err(Refusal::NotFound);
        }
        let mut base = uri.clone();
        base.set_query(None);
        base.set_fragment(None);
        base.set_path(&format!("{prefix}{token}/"));
        Ok(Self {
            kind,
            token: token.to_string(),
            track,
            base,
        })
    }

    /// What track `number` of this mount carries: the video (in its codec now) or the
    /// metadata.
    fn track_kind(&self, context: &Context, number: u8) -> Result<TrackKind, Refusal> {
        match (self.kind, number) {
            (MountKind::Media, 1) => context
                .shared
                .video
                .lock()
                .get(&self.token)
                .map(|v| TrackKind::Video(v.stream.format.codec))
                .ok_or(Refusal::NoVideoYet),
            _ => Ok(TrackKind::Metadata),
        }
    }

    fn track_url(&self, number: u8) -> Url {
        let mut url = self.base.clone();
        url.set_path(&format!("{}track{number}", self.base.path()));
        url
    }
}

fn describe(
    context: &Context,
    request: &Request<Vec<u8>>,
    mount: &Mount,
) -> Result<(rtsp_types::ResponseBuilder, Vec<u8>), Refusal> {
    let accepts_sdp = request
        .header(&h::ACCEPT)
        .is_none_or(|a| a.as_str().contains("application/sdp") || a.as_str().contains("*/*"));
    if !accepts_sdp {
        return Err(Refusal::NotAcceptable);
    }
    let metadata = |track: &str| {
        format!(
            "m=application 0 RTP/AVP {PAYLOAD_TYPE}\r\na=rtpmap:{PAYLOAD_TYPE} vnd.onvif.metadata/90000\r\n\
             a=control:{track}\r\na=sendonly\r\n"
        )
    };
    let (title, tracks) = match mount.kind {
        MountKind::Metadata => ("Vigil metadata", metadata(TRACK)),
        MountKind::Media => {
            let video = context
                .shared
                .video
                .lock()
                .get(&mount.token)
                .map(|v| v.stream.sdp_attributes())
                .ok_or(Refusal::NoVideoYet)?;
            let video = format!(
                "m=video 0 RTP/AVP {VIDEO_PAYLOAD_TYPE}\r\n{video}a=control:{TRACK}\r\na=sendonly\r\n"
            );
            ("Vigil", video + &metadata(METADATA_TRACK))
        }
    };
    let sdp = format!(
        "v=0\r\no=- {id} 1 IN IP4 0.0.0.0\r\ns={title}\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n\
         a=control:*\r\na=range:npt=now-\r\n{tracks}",
        id = random_u32(),
    );
    let builder = builder(StatusCode::Ok)
        .header(h::CONTENT_TYPE, "application/sdp")
        .header(h::CONTENT_BASE, mount.base.as_str());
    Ok((builder, sdp.into_bytes()))
}

fn setup(context: &Context, request: &Request<Vec<u8>>, mount: &Mount, user: &User) -> Answer {
    // A media mount's second track joins the session of its first: one session, one PLAY.
    let joining = match request.header(&h::SESSION) {
        Some(_) if mount.kind == MountKind::Media => Some(session_id(request)?),
        Some(_) => return Err(Refusal::AlreadySetUp),
        None => None,
    };
    let number = mount.track.unwrap_or(1);
    let kind = mount.track_kind(context, number)?;
    let transports = request
        .typed_header::<Transports>()
        .map_err(|_| Refusal::BadRequest("unparsable Transport".into()))?
        .ok_or(Refusal::UnsupportedTransport)?;
    let (delivery, reply) = transports
        .iter()
        .find_map(|t| choose(context, t, number))
        .ok_or(Refusal::UnsupportedTransport)?;
    let ssrc = random_u32();
    let payload_type = match kind {
        TrackKind::Video(_) => VIDEO_PAYLOAD_TYPE,
        TrackKind::Metadata => PAYLOAD_TYPE,
    };
    let track = Track {
        kind,
        number,
        delivery,
        sender: RtpSender::with_payload_type(payload_type, ssrc, random_u32() as u16, random_u32()),
        waiting_for_keyframe: true,
    };
    let id = match joining {
        Some(id) => {
            let mut sessions = context.shared.sessions.lock();
            let session = sessions.touch(&id, &user.name)?;
            if session.source != mount.token || session.mount != mount.kind {
                return Err(Refusal::SessionNotFound);
            }
            if session.track(number).is_some() {
                return Err(Refusal::AlreadySetUp);
            }
            session.tracks.push(track);
            id
        }
        None => {
            let session = Session {
                connection: context.connection,
                user: user.name.clone(),
                source: mount.token.clone(),
                mount: mount.kind,
                tracks: vec![track],
                playing: false,
                last_seen: Instant::now(),
            };
            let max = context.shared.config.max_sessions;
            context.shared.sessions.lock().insert(session, max)?
        }
    };
    tracing::info!(session = %id, user = %user.name, source = %mount.token, track = number, peer = %context.peer, "RTSP session set up");
    let mut reply = reply;
    reply.params.ssrc = vec![ssrc];
    Ok(builder(StatusCode::Ok)
        .typed_header(&Transports::from(vec![Transport::Rtp(reply)]))
        .typed_header(&session_header(context, id)))
}

/// The delivery a transport asks for and the transport to answer with, if acceptable.
/// UDP goes to the RTSP peer's own address whatever `destination` says.
fn choose(context: &Context, transport: &Transport, track: u8) -> Option<(Delivery, RtpTransport)> {
    let Transport::Rtp(rtp) = transport else {
        return None;
    };
    if rtp.profile != RtpProfile::Avp || rtp.params.multicast {
        return None;
    }
    let mut params = RtpTransportParameters {
        unicast: true,
        ..Default::default()
    };
    let delivery = match rtp.lower_transport {
        Some(RtpLowerTransport::Tcp) => {
            // Without channels asked for, each track gets its own pair.
            let default = track.saturating_sub(1).saturating_mul(2);
            let channel = rtp.params.interleaved.map_or(default, |(first, _)| first);
            if channel == u8::MAX {
                return None;
            }
            params.interleaved = Some((channel, Some(channel + 1)));
            Delivery::Interleaved {
                channel,
                out: context.out.clone(),
            }
        }
        None | Some(RtpLowerTransport::Udp) => {
            let (rtp_port, rtcp_port) = rtp.params.client_port.filter(|(p, _)| *p != 0)?;
            let ip = context.peer.ip();
            let rtcp_port = rtcp_port.unwrap_or(rtp_port.wrapping_add(1));
            params.client_port = Some((rtp_port, Some(rtcp_port)));
            let (server_rtp, server_rtcp) = (port(&context.shared.rtp), port(&context.shared.rtcp));
            params.server_port = Some((server_rtp, Some(server_rtcp)));
            Delivery::Udp {
                rtp: SocketAddr::new(ip, rtp_port),
                rtcp: Some(SocketAddr::new(ip, rtcp_port)),
            }
        }
        Some(RtpLowerTransport::Other(_)) => return None,
    };
    let reply = RtpTransport {
        profile: RtpProfile::Avp,
        lower_transport: rtp.lower_transport.clone(),
        params,
    };
    Some((delivery, reply))
}

fn port(socket: &tokio::net::UdpSocket) -> u16 {
    socket.local_addr().map_or(0, |a| a.port())
}

fn play(context: &Context, request: &Request<Vec<u8>>, mount: &Mount, user: &User) -> Answer {
    let id = session_id(request)?;
    let video_now = context.shared.video_now(&mount.token);
    let infos: Vec<String> = {
        let mut sessions = context.shared.sessions.lock();
        let session = sessions.touch(&id, &user.name)?;
        if session.source != mount.token || session.mount != mount.kind {
            return Err(Refusal::SessionNotFound);
        }
        session.playing = true;
        session
            .tracks
            .iter_mut()
            .map(|track| {
                // Video starts at a keyframe, also after a PAUSE.
                track.waiting_for_keyframe = true;
                let rtptime = match (track.kind, video_now) {
                    (TrackKind::Video(_), Some(now)) => track.sender.timestamp_at(now),
                    _ => track.sender.timestamp_now(),
                };
                format!(
                    "url={};seq={};rtptime={rtptime}",
                    mount.track_url(track.number),
                    track.sender.next_sequence()
                )
            })
            .collect()
    };
    Ok(builder(StatusCode::Ok)
        .typed_header(&session_header(context, id))
        .header(h::RANGE, "npt=now-")
        .header(h::RTP_INFO, infos.join(",")))
}

fn teardown(context: &Context, request: &Request<Vec<u8>>, user: &User) -> Answer {
    let id = session_id(request)?;
    context.shared.sessions.lock().remove(&id, &user.name)?;
    tracing::info!(session = %id, "RTSP session torn down");
    Ok(builder(StatusCode::Ok))
}

/// GET_PARAMETER / SET_PARAMETER without parameters: a keep-alive.
fn keep_alive(context: &Context, request: &Request<Vec<u8>>, user: &User) -> Answer {
    if request.header(&h::SESSION).is_none() {
        return Ok(builder(StatusCode::Ok));
    }
    with_session(context, request, user, |_| {})
}

fn with_session(
    context: &Context,
    request: &Request<Vec<u8>>,
    user: &User,
    change: impl FnOnce(&mut Session),
) -> Answer {
    let id = session_id(request)?;
    change(context.shared.sessions.lock().touch(&id, &user.name)?);
    Ok(builder(StatusCode::Ok).typed_header(&session_header(context, id)))
}

fn session_id(request: &Request<Vec<u8>>) -> Result<String, Refusal> {
    match request.typed_header::<SessionHeader>() {
        Ok(Some(session)) => Ok(session.0.trim().to_string()),
        _ => Err(Refusal::SessionNotFound),
    }
}

fn session_header(context: &Context, id: String) -> SessionHeader {
    SessionHeader::with_timeout(id, context.shared.config.session_timeout.as_secs().max(1))
}
