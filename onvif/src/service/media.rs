//! Media (ver10): the device's profiles (`crate::profiles`) in Media's shape, and where their
//! streams and snapshots are. Profiles and configurations are changed through Media2.

use super::analytics::analytics_configuration;
use super::{leaf, response, Answer, Operation};
use crate::auth::AccessClass::*;
use crate::device::VideoSource;
use crate::profiles::{Kind, Profile};
use crate::server::{Call, SNAPSHOT_PATH};
use crate::soap::Fault;
use crate::xml::escape;

pub(super) const OPERATIONS: &[Operation] = &[
    Operation::now("GetServiceCapabilities", PreAuth, |call| {
        Ok(response(
            "trt",
            "GetServiceCapabilities",
            &service_capabilities(call),
        ))
    }),
    Operation::now("GetProfiles", ReadMedia, get_profiles),
    Operation::now("GetProfile", ReadMedia, get_profile),
    Operation::now("GetVideoSources", ReadMedia, get_video_sources),
    Operation::now("GetVideoSourceConfigurations", ReadMedia, |call| {
        Ok(configurations(
            call,
            "GetVideoSourceConfigurations",
            |tag, _, s| video_source_configuration(tag, s),
        ))
    }),
    Operation::now("GetVideoEncoderConfigurations", ReadMedia, |call| {
        Ok(configurations(
            call,
            "GetVideoEncoderConfigurations",
            |tag, _, s| video_encoder_configuration(tag, s),
        ))
    }),
    Operation::now("GetMetadataConfigurations", ReadMedia, |call| {
        Ok(configurations(
            call,
            "GetMetadataConfigurations",
            metadata_configuration,
        ))
    }),
    Operation::now("GetStreamUri", ReadMedia, |call| {
        let profile = profile_named(call, call.request.body.child_text("ProfileToken"))?;
        Ok(media_uri("GetStreamUri", &stream_uri(call, &profile)?))
    }),
    Operation::now("GetSnapshotUri", ReadMedia, |call| {
        let profile = profile_named(call, call.request.body.child_text("ProfileToken"))?;
        Ok(media_uri("GetSnapshotUri", &snapshot_uri(call, &profile)?))
    }),
];

fn get_profiles(call: &Call<'_>) -> Answer {
    let sources = call.device.product.video_sources();
    let profiles: String = call
        .device
        .profiles()
        .iter()
        .map(|p| profile("trt:Profiles", call, p, &sources))
        .collect();
    Ok(response("trt", "GetProfiles", &profiles))
}

fn get_profile(call: &Call<'_>) -> Answer {
    let wanted = profile_named(call, call.request.body.child_text("ProfileToken"))?;
    let sources = call.device.product.video_sources();
    Ok(response(
        "trt",
        "GetProfile",
        &profile("trt:Profile", call, &wanted, &sources),
    ))
}

fn get_video_sources(call: &Call<'_>) -> Answer {
    let all: String = call
        .device
        .product
        .video_sources()
        .iter()
        .map(|s| {
            format!(
                "<trt:VideoSources token=\"{}\"><tt:Framerate>{}</tt:Framerate><tt:Resolution><tt:Width>{}</tt:Width>\
                 <tt:Height>{}</tt:Height></tt:Resolution></trt:VideoSources>",
                escape(&s.token),
                s.framerate,
                s.width,
                s.height
            )
        })
        .collect();
    Ok(response("trt", "GetVideoSources", &all))
}

/// A profile in Media's shape (`tt:Profile`: its configurations in the schema's order).
fn profile(tag: &str, call: &Call<'_>, profile: &Profile, sources: &[VideoSource]) -> String {
    let of = |kind: Kind| {
        sources
            .iter()
            .find(|s| Some(s.token.as_str()) == profile.content.get(kind))
    };
    let mut inner = leaf("tt:Name", &profile.name);
    if let Some(s) = of(Kind::VideoSource) {
        inner.push_str(&video_source_configuration(
            "tt:VideoSourceConfiguration",
            s,
        ));
    }
    if let Some(s) = of(Kind::VideoEncoder) {
        inner.push_str(&video_encoder_configuration(
            "tt:VideoEncoderConfiguration",
            s,
        ));
    }
    if let Some(s) = of(Kind::Analytics) {
        inner.push_str(&analytics_configuration(
            "tt:VideoAnalyticsConfiguration",
            call,
            s,
        ));
    }
    if let Some(s) = of(Kind::Metadata) {
        inner.push_str(&metadata_configuration("tt:MetadataConfiguration", call, s));
    }
    format!(
        "<{tag} token=\"{}\" fixed=\"{}\">{inner}</{tag}>",
        escape(&profile.token),
        profile.fixed
    )
}

/// The profile a request names.
pub(super) fn profile_named(call: &Call<'_>, token: Option<&str>) -> Result<Profile, Fault> {
    let token =
        token.ok_or_else(|| Fault::invalid_arg("ter:NoProfile", "no ProfileToken given"))?;
    call.device
        .profiles()
        .into_iter()
        .find(|p| p.token == token)
        .ok_or_else(|| Fault::invalid_arg("ter:NoProfile", format!("no profile {token}")))
}

/// The source of a configuration token of `kind`.
pub(super) fn source_named(call: &Call<'_>, kind: Kind, token: &str) -> Result<VideoSource, Fault> {
    kind.source_of(token)
        .and_then(|wanted| {
            call.device
                .product
                .video_sources()
                .into_iter()
                .find(|s| s.token == wanted)
        })
        .ok_or_else(|| Fault::invalid_arg("ter:NoConfig", format!("no configuration {token}")))
}

fn incomplete(profile: &Profile, what: &str) -> Fault {
    Fault::invalid_arg(
        "ter:IncompleteConfiguration",
        format!("profile {} has no {what}", profile.token),
    )
}

/// Where a profile streams: always Vigil's own RTSP server, never the camera (whose
/// credentials stay in the appliance): where it has an encoder, the mount of the relayed video
/// and the metadata; else the metadata mount.
pub(super) fn stream_uri(call: &Call<'_>, profile: &Profile) -> Result<String, Fault> {
    let content = &profile.content;
    let source_token = content
        .video_source
        .as_deref()
        .ok_or_else(|| incomplete(profile, "video source"))?;
    let source = source_named(
        call,
        Kind::VideoSource,
        &format!("{}{source_token}", Kind::VideoSource.prefix()),
    )?;
    if content.video_encoder.is_some() {
        // Before the camera's first connection its codec is not known: the URI is handed
        // out, and answers once the video comes.
        let relayable = call.device.video_relayed(&source.token) != Some(false);
        let path = crate::streaming::RtspServer::media_path(&source.token);
        return rtsp_uri(call, &path).filter(|_| relayable).ok_or_else(|| {
            incomplete(
                profile,
                "relayed video (the RTSP server is off, or the camera's codec cannot be relayed)",
            )
        });
    }
    if content.metadata.is_some() {
        let path = crate::streaming::RtspServer::mount_path(&source.token);
        if let Some(uri) = rtsp_uri(call, &path) {
            return Ok(uri);
        }
    }
    Err(incomplete(
        profile,
        "stream to serve (an encoder, or metadata while the metadata stream runs)",
    ))
}

pub(super) fn snapshot_uri(call: &Call<'_>, profile: &Profile) -> Result<String, Fault> {
    let source = profile
        .content
        .video_source
        .as_deref()
        .ok_or_else(|| incomplete(profile, "video source"))?;
    Ok(format!("{}{SNAPSHOT_PATH}{source}.jpg", call.base))
}

/// `rtsp://<the host the client reached us by>:<RTSP port><path>` (`http://` for RTSP over
/// HTTP), while the RTSP server runs.
fn rtsp_uri(call: &Call<'_>, path: &str) -> Option<String> {
    let port = call.device.metadata_rtsp_port()?;
    let authority = call
        .base
        .split_once("://")
        .map_or(call.base.as_str(), |(_, a)| a);
    let host = match authority.strip_prefix('[') {
        Some(v6) => format!("[{}]", v6.split(']').next().unwrap_or_default()),
        None => authority.split(':').next().unwrap_or_default().to_string(),
    };
    // RTSP over HTTP is served on the same port: such clients get an http:// URI for it.
    let scheme = if over_http(&call.request.body) {
        "http"
    } else {
        "rtsp"
    };
    Some(format!("{scheme}://{host}:{port}{path}"))
}

/// Whether GetStreamUri asks for RTSP tunnelled over HTTP: Media2's `Protocol` is
/// `RtspOverHttp`, Media's `StreamSetup/Transport/Protocol` is `HTTP`.
fn over_http(operation: &crate::xml::Element) -> bool {
    let media2 = operation.child_text("Protocol") == Some("RtspOverHttp");
    let media1 = operation
        .find(&["StreamSetup", "Transport", "Protocol"])
        .is_some_and(|p| p.text.trim() == "HTTP");
    media2 || media1
}

pub(super) fn service_capabilities(_call: &Call<'_>) -> String {
    "<trt:Capabilities SnapshotUri=\"true\" Rotation=\"false\" VideoSourceMode=\"false\" OSD=\"false\">\
     <trt:ProfileCapabilities MaximumNumberOfProfiles=\"64\"/>\
     <trt:StreamingCapabilities RTPMulticast=\"false\" RTP_TCP=\"true\" RTP_RTSP_TCP=\"true\" NonAggregateControl=\"false\" \
     NoRTSPStreaming=\"false\"/></trt:Capabilities>"
        .into()
}

fn media_uri(operation: &str, uri: &str) -> String {
    format!(
        "<trt:{operation}Response><trt:MediaUri>{}<tt:InvalidAfterConnect>false</tt:InvalidAfterConnect>\
         <tt:InvalidAfterReboot>false</tt:InvalidAfterReboot><tt:Timeout>PT0S</tt:Timeout></trt:MediaUri></trt:{operation}Response>",
        leaf("tt:Uri", uri)
    )
}

fn configurations(
    call: &Call<'_>,
    operation: &str,
    render: fn(&str, &Call<'_>, &VideoSource) -> String,
) -> String {
    let all: String = call
        .device
        .product
        .video_sources()
        .iter()
        .map(|s| render("trt:Configurations", call, s))
        .collect();
    format!("<trt:{operation}Response>{all}</trt:{operation}Response>")
}

pub(super) fn video_source_configuration(tag: &str, source: &VideoSource) -> String {
    format!(
        "<{tag} token=\"vsc_{token}\"><tt:Name>{name}</tt:Name><tt:UseCount>1</tt:UseCount><tt:SourceToken>{token}</tt:SourceToken>\
         <tt:Bounds x=\"0\" y=\"0\" width=\"{}\" height=\"{}\"/></{tag}>",
        source.width,
        source.height,
        token = escape(&source.token),
        name = escape(&source.name),
    )
}

fn video_encoder_configuration(tag: &str, source: &VideoSource) -> String {
    format!(
        "<{tag} token=\"vec_{token}\"><tt:Name>{name}</tt:Name><tt:UseCount>1</tt:UseCount><tt:Encoding>{}</tt:Encoding>\
         <tt:Resolution><tt:Width>{}</tt:Width><tt:Height>{}</tt:Height></tt:Resolution><tt:Quality>5</tt:Quality>\
         <tt:RateControl><tt:FrameRateLimit>{}</tt:FrameRateLimit><tt:EncodingInterval>1</tt:EncodingInterval>\
         <tt:BitrateLimit>0</tt:BitrateLimit></tt:RateControl>\
         <tt:H264><tt:GovLength>{}</tt:GovLength><tt:H264Profile>Main</tt:H264Profile></tt:H264>\
         <tt:Multicast><tt:Address><tt:Type>IPv4</tt:Type><tt:IPv4Address>0.0.0.0</tt:IPv4Address></tt:Address>\
         <tt:Port>0</tt:Port><tt:TTL>0</tt:TTL><tt:AutoStart>false</tt:AutoStart></tt:Multicast>\
         <tt:SessionTimeout>PT60S</tt:SessionTimeout></{tag}>",
        source.encoding.media1_name(),
        source.width,
        source.height,
        source.framerate.round() as u32,
        source.framerate.round().max(1.0) as u32,
        token = escape(&source.token),
        name = escape(&source.name),
    )
}

/// A source's metadata configuration, as a client last set it.
pub(super) fn metadata_configuration(tag: &str, call: &Call<'_>, source: &VideoSource) -> String {
    let settings = call.device.metadata_settings(&source.token);
    let name = settings
        .name
        .clone()
        .unwrap_or_else(|| format!("{} metadata", source.name));
    let events = match &settings.events {
        None => String::new(),
        Some(expression) if expression.is_empty() => "<tt:Events/>".into(),
        Some(expression) => format!(
            "<tt:Events><tt:Filter><wsnt:TopicExpression Dialect=\"http://www.onvif.org/ver10/tev/topicExpression/ConcreteSet\">{}</wsnt:TopicExpression></tt:Filter></tt:Events>",
            escape(expression)
        ),
    };
    format!(
        "<{tag} token=\"meta_{token}\">{}<tt:UseCount>1</tt:UseCount>\
         {events}<tt:Analytics>{}</tt:Analytics>\
         <tt:Multicast><tt:Address><tt:Type>IPv4</tt:Type><tt:IPv4Address>0.0.0.0</tt:IPv4Address></tt:Address>\
         <tt:Port>0</tt:Port><tt:TTL>0</tt:TTL><tt:AutoStart>false</tt:AutoStart></tt:Multicast>\
         <tt:SessionTimeout>PT60S</tt:SessionTimeout></{tag}>",
        leaf("tt:Name", name),
        settings.analytics,
        token = escape(&source.token),
    )
}
