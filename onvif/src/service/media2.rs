//! Media2 (ver20): the same profiles as Media, in Media2's shape, where H.265 can say so.

use super::analytics::analytics_configuration;
use super::media::{
    by_profile, metadata_configuration, metadata_profile, metadata_profile_source, snapshot_uri,
    stream_uri, video_source_configuration, METADATA_PROFILE,
};
use super::{leaf, response, Answer, Operation};
use crate::analytics::CONFIGURATION_PREFIX;
use crate::auth::AccessClass::*;
use crate::device::VideoSource;
use crate::server::Call;
use crate::soap::Fault;
use crate::xml::escape;

pub(super) const OPERATIONS: &[Operation] = &[
    Operation::now("GetServiceCapabilities", PreAuth, |call| {
        Ok(response(
            "tr2",
            "GetServiceCapabilities",
            &service_capabilities(call),
        ))
    }),
    Operation::now("GetProfiles", ReadMedia, get_profiles),
    Operation::now("GetVideoSourceConfigurations", ReadMedia, |call| {
        configurations(call, "GetVideoSourceConfigurations", "vsc_", |s| {
            Some(video_source_configuration("tr2:Configurations", s))
        })
    }),
    Operation::now("GetVideoEncoderConfigurations", ReadMedia, |call| {
        // A metadata profile has no encoder.
        let metadata_only = metadata_only(call);
        configurations(call, "GetVideoEncoderConfigurations", "vec_", |s| {
            (!metadata_only).then(|| video_encoder("tr2:Configurations", s))
        })
    }),
    Operation::now("GetMetadataConfigurations", ReadMedia, |call| {
        configurations(call, "GetMetadataConfigurations", "meta_", |s| {
            Some(metadata_configuration("tr2:Configurations", s))
        })
    }),
    Operation::now("GetAnalyticsConfigurations", ReadMedia, |call| {
        configurations(
            call,
            "GetAnalyticsConfigurations",
            CONFIGURATION_PREFIX,
            |s| Some(analytics_configuration("tr2:Configurations", call, s)),
        )
    }),
    Operation::now("GetStreamUri", ReadMedia, |call| {
        let sources = call.device.product.video_sources();
        Ok(response(
            "tr2",
            "GetStreamUri",
            &leaf("tr2:Uri", stream_uri(call, &sources)?),
        ))
    }),
    Operation::now("GetSnapshotUri", ReadMedia, |call| {
        let sources = call.device.product.video_sources();
        let source = by_profile(&sources, call.request.body.child_text("ProfileToken"))?;
        Ok(response(
            "tr2",
            "GetSnapshotUri",
            &leaf("tr2:Uri", snapshot_uri(call, source)),
        ))
    }),
];

fn get_profiles(call: &Call<'_>) -> Answer {
    let all_sources = call.device.product.video_sources();
    let wanted = call.request.body.child_text("Token");
    let mut profiles: String = all_sources
        .iter()
        .filter(|s| wanted.is_none_or(|t| t == s.profile_token()))
        .map(|s| profile(call, s))
        .collect();
    if call.device.metadata_rtsp_port().is_some() {
        profiles.extend(
            all_sources
                .iter()
                .filter(|s| wanted.is_none_or(|t| t == format!("{METADATA_PROFILE}{}", s.token)))
                .map(|s| metadata_profile("tr2:Profiles", call, s)),
        );
    }
    if wanted.is_some() && profiles.is_empty() {
        return Err(Fault::invalid_arg("ter:NoProfile", "no such profile"));
    }
    Ok(response("tr2", "GetProfiles", &profiles))
}

/// Whether the request names a metadata-only profile.
fn metadata_only(call: &Call<'_>) -> bool {
    let sources = call.device.product.video_sources();
    metadata_profile_source(call, &sources, call.request.body.child_text("ProfileToken")).is_some()
}

/// The configurations of one kind (`prefix` of their tokens), narrowed by the request's
/// `ProfileToken` and `ConfigurationToken` where given.
fn configurations(
    call: &Call<'_>,
    operation: &str,
    prefix: &str,
    render: impl Fn(&VideoSource) -> Option<String>,
) -> Answer {
    let operation_element = &call.request.body;
    let all_sources = call.device.product.video_sources();
    let profile_token = operation_element.child_text("ProfileToken");
    let sources: Vec<&VideoSource> = match (
        profile_token,
        metadata_profile_source(call, &all_sources, profile_token),
    ) {
        (Some(_), Some(source)) => vec![source],
        (Some(token), None) => vec![by_profile(&all_sources, Some(token))?],
        (None, _) => all_sources.iter().collect(),
    };
    let configuration = operation_element.child_text("ConfigurationToken");
    let chosen: Vec<&VideoSource> = sources
        .into_iter()
        .filter(|s| configuration.is_none_or(|c| c == format!("{prefix}{}", s.token)))
        .collect();
    if let (Some(token), true) = (configuration, chosen.is_empty()) {
        return Err(Fault::invalid_arg(
            "ter:NoConfig",
            format!("no configuration {token}"),
        ));
    }
    let all: String = chosen.into_iter().filter_map(render).collect();
    Ok(response("tr2", operation, &all))
}

pub(super) fn service_capabilities(_call: &Call<'_>) -> String {
    "<tr2:Capabilities SnapshotUri=\"true\" Rotation=\"false\" VideoSourceMode=\"false\" OSD=\"false\" Mask=\"false\" SourceMask=\"false\">\
     <tr2:ProfileCapabilities MaximumNumberOfProfiles=\"64\" ConfigurationsSupported=\"VideoSource VideoEncoder Analytics Metadata\"/>\
     <tr2:StreamingCapabilities RTSPStreaming=\"true\" RTPMulticast=\"false\" RTP_RTSP_TCP=\"true\" NonAggregateControl=\"false\" \
     AutoStartMulticast=\"false\"/></tr2:Capabilities>"
        .into()
}

fn profile(call: &Call<'_>, source: &VideoSource) -> String {
    format!(
        "<tr2:Profiles token=\"{}\" fixed=\"true\">{}<tr2:Configurations>{}{}{}{}</tr2:Configurations></tr2:Profiles>",
        escape(&source.profile_token()),
        leaf("tr2:Name", &source.name),
        video_source_configuration("tr2:VideoSource", source),
        video_encoder("tr2:VideoEncoder", source),
        analytics_configuration("tr2:Analytics", call, source),
        metadata_configuration("tr2:Metadata", source),
    )
}

fn video_encoder(tag: &str, source: &VideoSource) -> String {
    format!(
        "<{tag} token=\"vec_{token}\" GovLength=\"{}\" Profile=\"Main\"><tt:Name>{name}</tt:Name><tt:UseCount>1</tt:UseCount>\
         <tt:Encoding>{}</tt:Encoding><tt:Resolution><tt:Width>{}</tt:Width><tt:Height>{}</tt:Height></tt:Resolution>\
         <tt:RateControl ConstantBitRate=\"false\"><tt:FrameRateLimit>{}</tt:FrameRateLimit><tt:BitrateLimit>0</tt:BitrateLimit></tt:RateControl>\
         <tt:Quality>5</tt:Quality></{tag}>",
        source.framerate.round().max(1.0) as u32,
        source.encoding.media2_name(),
        source.width,
        source.height,
        source.framerate,
        token = escape(&source.token),
        name = escape(&source.name),
    )
}
