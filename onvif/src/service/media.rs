//! Media (ver10): one fixed profile per video source with its source, an H.264 encoder
//! configuration describing the camera's stream, and a metadata configuration.

use super::analytics::analytics_configuration;
use super::{leaf, response, Answer, Operation};
use crate::auth::AccessClass::*;
use crate::device::VideoSource;
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
            video_source_configuration,
        ))
    }),
    Operation::now("GetVideoEncoderConfigurations", ReadMedia, |call| {
        Ok(configurations(
            call,
            "GetVideoEncoderConfigurations",
            video_encoder_configuration,
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
        let sources = call.device.product.video_sources();
        Ok(media_uri("GetStreamUri", &stream_uri(call, &sources)?))
    }),
    Operation::now("GetSnapshotUri", ReadMedia, |call| {
        let sources = call.device.product.video_sources();
        let source = by_profile(&sources, call.request.body.child_text("ProfileToken"))?;
        Ok(media_uri("GetSnapshotUri", &snapshot_uri(call, source)))
    }),
];

fn get_profiles(call: &Call<'_>) -> Answer {
    let sources = call.device.product.video_sources();
    let mut profiles: String = sources
        .iter()
        .map(|s| profile("trt:Profiles", call, s))
        .collect();
    if call.device.metadata_rtsp_port().is_some() {
        profiles.extend(
            sources
                .iter()
                .map(|s| metadata_profile("trt:Profiles", call, s)),
        );
    }
    Ok(response("trt", "GetProfiles", &profiles))
}

fn get_profile(call: &Call<'_>) -> Answer {
    let sources = call.device.product.video_sources();
    let token = call.request.body.child_text("ProfileToken");
    let answer = match metadata_profile_source(call, &sources, token) {
        Some(source) => metadata_profile("trt:Profile", call, source),
        None => profile("trt:Profile", call, by_profile(&sources, token)?),
    };
    Ok(response("trt", "GetProfile", &answer))
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

pub(super) fn snapshot_uri(call: &Call<'_>, source: &VideoSource) -> String {
    format!("{}{SNAPSHOT_PATH}{}.jpg", call.base, source.token)
}

/// The stream of the request's profile: a camera's own, or Vigil's metadata mount.
pub(super) fn stream_uri(call: &Call<'_>, sources: &[VideoSource]) -> Result<String, Fault> {
    let token = call.request.body.child_text("ProfileToken");
    if let Some(source) = metadata_profile_source(call, sources, token) {
        if let Some(uri) = metadata_stream_uri(call, source) {
            return Ok(uri);
        }
    }
    Ok(by_profile(sources, token)?.stream_uri.clone())
}

/// The source of a metadata profile token (`metadata_<source token>`), while the metadata
/// RTSP server runs.
pub(super) fn metadata_profile_source<'a>(
    call: &Call<'_>,
    sources: &'a [VideoSource],
    token: Option<&str>,
) -> Option<&'a VideoSource> {
    call.device.metadata_rtsp_port()?;
    let wanted = token?.strip_prefix(METADATA_PROFILE)?;
    sources.iter().find(|s| s.token == wanted)
}

pub(super) const METADATA_PROFILE: &str = "metadata_";

/// `rtsp://<the host the client reached us by>:<RTSP port>/onvif/metadata/<source token>`
/// (`http://` for RTSP over HTTP).
pub(super) fn metadata_stream_uri(call: &Call<'_>, source: &VideoSource) -> Option<String> {
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
    Some(format!(
        "{scheme}://{host}:{port}{}",
        crate::streaming::RtspServer::mount_path(&source.token)
    ))
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

/// A profile with the source, its analytics and its metadata: what a Profile M client streams.
pub(super) fn metadata_profile(tag: &str, call: &Call<'_>, source: &VideoSource) -> String {
    let inner = if tag.starts_with("tr2:") {
        format!(
            "<tr2:Configurations>{}{}{}</tr2:Configurations>",
            video_source_configuration("tr2:VideoSource", source),
            analytics_configuration("tr2:Analytics", call, source),
            metadata_configuration("tr2:Metadata", source)
        )
    } else {
        format!(
            "{}{}{}",
            video_source_configuration("tt:VideoSourceConfiguration", source),
            analytics_configuration("tt:VideoAnalyticsConfiguration", call, source),
            metadata_configuration("tt:MetadataConfiguration", source)
        )
    };
    let name = if tag.starts_with("tr2:") {
        "tr2:Name"
    } else {
        "tt:Name"
    };
    format!(
        "<{tag} token=\"{METADATA_PROFILE}{}\" fixed=\"true\">{}{inner}</{tag}>",
        escape(&source.token),
        leaf(name, format!("{} metadata", source.name)),
    )
}

pub(super) fn by_profile<'a>(
    sources: &'a [VideoSource],
    token: Option<&str>,
) -> Result<&'a VideoSource, Fault> {
    let token =
        token.ok_or_else(|| Fault::invalid_arg("ter:NoProfile", "no ProfileToken given"))?;
    sources
        .iter()
        .find(|s| s.profile_token() == token)
        .ok_or_else(|| Fault::invalid_arg("ter:NoProfile", format!("no profile {token}")))
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
    render: fn(&str, &VideoSource) -> String,
) -> String {
    let all: String = call
        .device
        .product
        .video_sources()
        .iter()
        .map(|s| render("trt:Configurations", s))
        .collect();
    format!("<trt:{operation}Response>{all}</trt:{operation}Response>")
}

fn profile(tag: &str, call: &Call<'_>, source: &VideoSource) -> String {
    format!(
        "<{tag} token=\"{}\" fixed=\"true\">{}{}{}{}{}</{tag}>",
        escape(&source.profile_token()),
        leaf("tt:Name", &source.name),
        video_source_configuration("tt:VideoSourceConfiguration", source),
        video_encoder_configuration("tt:VideoEncoderConfiguration", source),
        analytics_configuration("tt:VideoAnalyticsConfiguration", call, source),
        metadata_configuration("tt:MetadataConfiguration", source),
    )
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

pub(super) fn metadata_configuration(tag: &str, source: &VideoSource) -> String {
    format!(
        "<{tag} token=\"meta_{token}\"><tt:Name>{name} events</tt:Name><tt:UseCount>1</tt:UseCount>\
         <tt:Events/><tt:Analytics>true</tt:Analytics>\
         <tt:Multicast><tt:Address><tt:Type>IPv4</tt:Type><tt:IPv4Address>0.0.0.0</tt:IPv4Address></tt:Address>\
         <tt:Port>0</tt:Port><tt:TTL>0</tt:TTL><tt:AutoStart>false</tt:AutoStart></tt:Multicast>\
         <tt:SessionTimeout>PT60S</tt:SessionTimeout></{tag}>",
        token = escape(&source.token),
        name = escape(&source.name),
    )
}
