//! Media2 (ver20): the same profiles as Media, in Media2's shape, where H.265 can say so.

use super::leaf;
use super::media::{
    by_profile, metadata_configuration, metadata_profile, metadata_profile_source, snapshot_uri,
    stream_uri, video_source_configuration,
};
use crate::device::VideoSource;
use crate::server::Call;
use crate::soap::Fault;
use crate::xml::escape;

pub(super) fn handle(call: &Call<'_>) -> Result<String, Fault> {
    let operation = &call.request.body;
    let all_sources = call.device.product.video_sources();
    // Configuration queries may narrow to one profile or one configuration token.
    let profile_token = operation.child_text("ProfileToken");
    let metadata_only = metadata_profile_source(call, &all_sources, profile_token);
    let sources: Vec<&VideoSource> = match (profile_token, metadata_only) {
        (Some(_), Some(source)) => vec![source],
        (Some(token), None) => vec![by_profile(&all_sources, Some(token))?],
        (None, _) => all_sources.iter().collect(),
    };
    let configuration = operation.child_text("ConfigurationToken");
    let pick = |prefix: &str| -> Vec<&VideoSource> {
        sources
            .iter()
            .copied()
            .filter(|s| configuration.is_none_or(|c| c == format!("{prefix}{}", s.token)))
            .collect()
    };
    let body = match operation.name.as_str() {
        "GetServiceCapabilities" => format!(
            "<tr2:GetServiceCapabilitiesResponse>{}</tr2:GetServiceCapabilitiesResponse>",
            service_capabilities(call)
        ),
        "GetProfiles" => {
            let wanted = operation.child_text("Token");
            let mut profiles: String = all_sources
                .iter()
                .filter(|s| wanted.is_none_or(|t| t == s.profile_token()))
                .map(profile)
                .collect();
            if call.device.metadata_rtsp_port().is_some() {
                profiles.extend(
                    all_sources
                        .iter()
                        .filter(|s| wanted.is_none_or(|t| t == format!("metadata_{}", s.token)))
                        .map(|s| metadata_profile("tr2:Profiles", s)),
                );
            }
            if wanted.is_some() && profiles.is_empty() {
                return Err(Fault::invalid_arg("ter:NoProfile", "no such profile"));
            }
            format!("<tr2:GetProfilesResponse>{profiles}</tr2:GetProfilesResponse>")
        }
        "GetVideoSourceConfigurations" => {
            let all: String = pick("vsc_")
                .iter()
                .map(|s| video_source_configuration("tr2:Configurations", s))
                .collect();
            format!("<tr2:GetVideoSourceConfigurationsResponse>{all}</tr2:GetVideoSourceConfigurationsResponse>")
        }
        "GetVideoEncoderConfigurations" => {
            // A metadata profile has no encoder.
            let all: String = pick("vec_")
                .iter()
                .filter(|_| metadata_only.is_none())
                .map(|s| video_encoder("tr2:Configurations", s))
                .collect();
            format!("<tr2:GetVideoEncoderConfigurationsResponse>{all}</tr2:GetVideoEncoderConfigurationsResponse>")
        }
        "GetMetadataConfigurations" => {
            let all: String = pick("meta_")
                .iter()
                .map(|s| metadata_configuration("tr2:Configurations", s))
                .collect();
            format!("<tr2:GetMetadataConfigurationsResponse>{all}</tr2:GetMetadataConfigurationsResponse>")
        }
        "GetStreamUri" => format!(
            "<tr2:GetStreamUriResponse>{}</tr2:GetStreamUriResponse>",
            leaf("tr2:Uri", stream_uri(call, &all_sources)?)
        ),
        "GetSnapshotUri" => {
            let source = by_profile(&all_sources, operation.child_text("ProfileToken"))?;
            format!(
                "<tr2:GetSnapshotUriResponse>{}</tr2:GetSnapshotUriResponse>",
                leaf("tr2:Uri", snapshot_uri(call, source))
            )
        }
        other => return Err(Fault::action_not_supported(other)),
    };
    Ok(body)
}

pub(super) fn service_capabilities(_call: &Call<'_>) -> String {
    "<tr2:Capabilities SnapshotUri=\"true\" Rotation=\"false\" VideoSourceMode=\"false\" OSD=\"false\" Mask=\"false\" SourceMask=\"false\">\
     <tr2:ProfileCapabilities MaximumNumberOfProfiles=\"64\" ConfigurationsSupported=\"VideoSource VideoEncoder Metadata\"/>\
     <tr2:StreamingCapabilities RTSPStreaming=\"true\" RTPMulticast=\"false\" RTP_RTSP_TCP=\"true\" NonAggregateControl=\"false\" \
     AutoStartMulticast=\"false\"/></tr2:Capabilities>"
        .into()
}

fn profile(source: &VideoSource) -> String {
    format!(
        "<tr2:Profiles token=\"{}\" fixed=\"true\">{}<tr2:Configurations>{}{}{}</tr2:Configurations></tr2:Profiles>",
        escape(&source.profile_token()),
        leaf("tr2:Name", &source.name),
        video_source_configuration("tr2:VideoSource", source),
        video_encoder("tr2:VideoEncoder", source),
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
