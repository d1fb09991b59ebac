//! Media2 (ver20): the profiles in Media2's shape (where H.265 can say so), and what Media2
//! lets clients change: profiles and their configurations (`crate::profiles`), and the
//! metadata configurations.

use super::analytics::analytics_configuration;
use super::media::{
    metadata_configuration, profile_named, snapshot_uri, source_named, stream_uri,
    video_source_configuration,
};
use super::{leaf, response, Answer, Operation};
use crate::auth::AccessClass::*;
use crate::device::VideoSource;
use crate::profiles::{Content, Kind, MetadataSettings, Profile, StoredProfile, MAX_PROFILES};
use crate::server::Call;
use crate::soap::Fault;
use crate::xml::{escape, Element};

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
        configurations(call, Kind::VideoSource, "GetVideoSourceConfigurations")
    }),
    Operation::now("GetVideoEncoderConfigurations", ReadMedia, |call| {
        configurations(call, Kind::VideoEncoder, "GetVideoEncoderConfigurations")
    }),
    Operation::now("GetAnalyticsConfigurations", ReadMedia, |call| {
        configurations(call, Kind::Analytics, "GetAnalyticsConfigurations")
    }),
    Operation::now("GetMetadataConfigurations", ReadMedia, |call| {
        configurations(call, Kind::Metadata, "GetMetadataConfigurations")
    }),
    Operation::now(
        "GetMetadataConfigurationOptions",
        ReadMedia,
        get_metadata_configuration_options,
    ),
    Operation::now("GetStreamUri", ReadMedia, |call| {
        let profile = profile_named(call, call.request.body.child_text("ProfileToken"))?;
        Ok(response(
            "tr2",
            "GetStreamUri",
            &leaf("tr2:Uri", stream_uri(call, &profile)?),
        ))
    }),
    Operation::now("GetSnapshotUri", ReadMedia, |call| {
        let profile = profile_named(call, call.request.body.child_text("ProfileToken"))?;
        Ok(response(
            "tr2",
            "GetSnapshotUri",
            &leaf("tr2:Uri", snapshot_uri(call, &profile)?),
        ))
    }),
    Operation::now("SetSynchronizationPoint", ReadMedia, |call| {
        profile_named(call, call.request.body.child_text("ProfileToken"))?;
        call.device.events().synchronize_streams();
        Ok("<tr2:SetSynchronizationPointResponse/>".into())
    }),
    Operation::now("CreateProfile", Actuate, create_profile),
    Operation::now("DeleteProfile", Actuate, delete_profile),
    Operation::now("AddConfiguration", Actuate, add_configuration),
    Operation::now("RemoveConfiguration", Actuate, remove_configuration),
    Operation::now(
        "SetMetadataConfiguration",
        Actuate,
        set_metadata_configuration,
    ),
];

/// One configuration of `kind` of `source`, as element `tag`.
fn configuration(call: &Call<'_>, kind: Kind, tag: &str, source: &VideoSource) -> String {
    match kind {
        Kind::VideoSource => video_source_configuration(tag, source),
        Kind::VideoEncoder => video_encoder(tag, source),
        Kind::Analytics => analytics_configuration(tag, call, source),
        Kind::Metadata => metadata_configuration(tag, call, source),
    }
}

/// `tr2:Profiles` with the configurations of the kinds asked for.
fn profile(call: &Call<'_>, profile: &Profile, sources: &[VideoSource], kinds: &[Kind]) -> String {
    let configurations: String = kinds
        .iter()
        .filter_map(|kind| {
            let source = sources
                .iter()
                .find(|s| Some(s.token.as_str()) == profile.content.get(*kind))?;
            Some(configuration(
                call,
                *kind,
                &format!("tr2:{}", kind.name()),
                source,
            ))
        })
        .collect();
    let configurations = if kinds.is_empty() {
        String::new()
    } else {
        format!("<tr2:Configurations>{configurations}</tr2:Configurations>")
    };
    format!(
        "<tr2:Profiles token=\"{}\" fixed=\"{}\">{}{configurations}</tr2:Profiles>",
        escape(&profile.token),
        profile.fixed,
        leaf("tr2:Name", &profile.name),
    )
}

/// GetProfiles: `Type` says which configurations to include (none without it, every kind
/// with `All`).
fn get_profiles(call: &Call<'_>) -> Answer {
    let request = &call.request.body;
    let wanted = request.child_text("Token");
    let mut kinds = Vec::new();
    for kind in request.children_named("Type").map(|t| t.text.trim()) {
        match kind {
            "All" => kinds = Kind::ALL.to_vec(),
            name => {
                if let Some(kind) = Kind::parse(name).filter(|k| !kinds.contains(k)) {
                    kinds.push(kind);
                }
            }
        }
    }
    kinds.sort_by_key(|k| Kind::ALL.iter().position(|a| a == k));
    let sources = call.device.product.video_sources();
    let profiles: String = call
        .device
        .profiles()
        .iter()
        .filter(|p| wanted.is_none_or(|t| t == p.token))
        .map(|p| profile(call, p, &sources, &kinds))
        .collect();
    if wanted.is_some() && profiles.is_empty() {
        return Err(Fault::invalid_arg("ter:NoProfile", "no such profile"));
    }
    Ok(response("tr2", "GetProfiles", &profiles))
}

/// The configurations of one kind: the one a `ConfigurationToken` names, those compatible
/// with the profile a `ProfileToken` names (its video source's, or all if it has none), or
/// all.
fn configurations(call: &Call<'_>, kind: Kind, operation: &str) -> Answer {
    let request = &call.request.body;
    let sources = call.device.product.video_sources();
    let mut chosen: Vec<&VideoSource> = sources.iter().collect();
    if let Some(token) = request.child_text("ProfileToken") {
        let profile = profile_named(call, Some(token))?;
        if let Some(source) = &profile.content.video_source {
            chosen.retain(|s| &s.token == source);
        }
    }
    if let Some(token) = request.child_text("ConfigurationToken") {
        chosen.retain(|s| kind.source_of(token) == Some(s.token.as_str()));
        if chosen.is_empty() {
            return Err(Fault::invalid_arg(
                "ter:NoConfig",
                format!("no configuration {token}"),
            ));
        }
    }
    let all: String = chosen
        .iter()
        .map(|s| configuration(call, kind, "tr2:Configurations", s))
        .collect();
    Ok(response("tr2", operation, &all))
}

fn create_profile(call: &Call<'_>) -> Answer {
    let request = &call.request.body;
    let name = request
        .child_text("Name")
        .filter(|n| !n.is_empty() && n.chars().count() <= 64)
        .ok_or_else(|| {
            Fault::invalid_arg(
                "ter:InvalidArgVal",
                "a profile's Name has 1 to 64 characters",
            )
        })?
        .to_string();
    let mut content = Content::default();
    apply_references(call, request, &mut content)?;
    if let Some(why) = content.conflict() {
        return Err(conflict(why));
    }
    if call.device.profiles().len() >= MAX_PROFILES {
        return Err(Fault {
            subcodes: vec!["ter:Action", "ter:MaxNVTProfiles"],
            ..Fault::receiver("", format!("at most {MAX_PROFILES} profiles"))
        });
    }
    let token = format!("client_{}", uuid::Uuid::new_v4().simple());
    call.device.change_settings(|s| {
        s.profiles
            .created
            .insert(token.clone(), StoredProfile { name, content });
        Ok(())
    })?;
    call.device.profile_changed(&token);
    Ok(response("tr2", "CreateProfile", &leaf("tr2:Token", &token)))
}

fn delete_profile(call: &Call<'_>) -> Answer {
    let profile = profile_named(call, call.request.body.child_text("Token"))?;
    if profile.fixed {
        return Err(Fault {
            subcodes: vec!["ter:Action", "ter:DeletionOfFixedProfile"],
            ..Fault::sender("", format!("{} is fixed", profile.token))
        });
    }
    call.device.change_settings(|s| {
        s.profiles.created.remove(&profile.token);
        Ok(())
    })?;
    call.device.profile_changed(&profile.token);
    Ok("<tr2:DeleteProfileResponse/>".into())
}

/// Sets `content`'s configurations from the request's `Configuration` references; those of
/// type `All`, or of kinds the device has not, are ignored.
fn apply_references(
    call: &Call<'_>,
    request: &Element,
    content: &mut Content,
) -> Result<(), Fault> {
    let sources = call.device.product.video_sources();
    for reference in request.children_named("Configuration") {
        let Some(kind) = reference.child_text("Type").and_then(Kind::parse) else {
            continue;
        };
        let token = reference.child_text("Token").ok_or_else(|| {
            Fault::invalid_arg(
                "ter:NoConfig",
                format!("no Token for the {} configuration", kind.name()),
            )
        })?;
        let source = kind
            .source_of(token)
            .filter(|s| sources.iter().any(|source| source.token == *s))
            .ok_or_else(|| {
                Fault::invalid_arg("ter:NoConfig", format!("no configuration {token}"))
            })?;
        content.set(kind, Some(source.to_string()));
    }
    Ok(())
}

fn conflict(why: String) -> Fault {
    Fault {
        subcodes: vec!["ter:Action", "ter:ConfigurationConflict"],
        ..Fault::receiver("", why)
    }
}

/// Stores a profile's new content (and name), then tells subscribers.
fn change_profile(
    call: &Call<'_>,
    profile: Profile,
    content: Content,
    name: Option<String>,
) -> Answer {
    if let Some(why) = content.conflict() {
        return Err(conflict(why));
    }
    call.device.change_settings(|s| {
        if profile.fixed {
            s.profiles
                .fixed_content
                .insert(profile.token.clone(), content);
        } else if let Some(stored) = s.profiles.created.get_mut(&profile.token) {
            stored.content = content;
            if let Some(name) = name {
                stored.name = name;
            }
        }
        Ok(())
    })?;
    call.device.profile_changed(&profile.token);
    Ok(String::new())
}

fn add_configuration(call: &Call<'_>) -> Answer {
    let request = &call.request.body;
    let profile = profile_named(call, request.child_text("ProfileToken"))?;
    let mut content = profile.content.clone();
    apply_references(call, request, &mut content)?;
    let name = request
        .child_text("Name")
        .filter(|n| !n.is_empty())
        .map(str::to_string);
    change_profile(call, profile, content, name)?;
    Ok("<tr2:AddConfigurationResponse/>".into())
}

/// Removes configurations by type (their tokens are ignored, as Media2 says); `All` empties
/// the profile; a type the profile has not is no error.
fn remove_configuration(call: &Call<'_>) -> Answer {
    let request = &call.request.body;
    let profile = profile_named(call, request.child_text("ProfileToken"))?;
    let mut content = profile.content.clone();
    for kind in request
        .children_named("Configuration")
        .filter_map(|c| c.child_text("Type"))
    {
        match kind {
            "All" => content = Content::default(),
            name => {
                if let Some(kind) = Kind::parse(name) {
                    content.set(kind, None);
                }
            }
        }
    }
    change_profile(call, profile, content, None)?;
    Ok("<tr2:RemoveConfigurationResponse/>".into())
}

/// No PTZ, no compression choice, no geolocation: what a metadata configuration can be set to.
fn get_metadata_configuration_options(call: &Call<'_>) -> Answer {
    let request = &call.request.body;
    if let Some(token) = request.child_text("ProfileToken") {
        profile_named(call, Some(token))?;
    }
    if let Some(token) = request.child_text("ConfigurationToken") {
        source_named(call, Kind::Metadata, token)?;
    }
    Ok(response(
        "tr2",
        "GetMetadataConfigurationOptions",
        "<tr2:Options GeoLocation=\"false\"><tt:PTZStatusFilterOptions><tt:PanTiltStatusSupported>false</tt:PanTiltStatusSupported>\
         <tt:ZoomStatusSupported>false</tt:ZoomStatusSupported></tt:PTZStatusFilterOptions>\
         <tt:Extension><tt:CompressionType>None</tt:CompressionType></tt:Extension></tr2:Options>",
    ))
}

/// Keeps the configuration's name, whether the stream carries the faces (`Analytics`), and
/// the events asked for.
fn set_metadata_configuration(call: &Call<'_>) -> Answer {
    let configuration = call
        .request
        .body
        .child("Configuration")
        .ok_or_else(|| Fault::invalid_arg("ter:NoConfig", "no Configuration given"))?;
    let token = configuration.attribute("token").unwrap_or_default();
    source_named(call, Kind::Metadata, token)?;
    let name = configuration
        .child_text("Name")
        .filter(|n| !n.is_empty())
        .map(str::to_string);
    if name.as_ref().is_some_and(|n| n.chars().count() > 64) {
        return Err(Fault::invalid_arg(
            "ter:ConfigModify",
            "a Name has at most 64 characters",
        ));
    }
    // Documents go uncompressed, and there is no PTZ whose status could ride along.
    if let Some(compression) = configuration
        .attribute("CompressionType")
        .filter(|c| *c != "None")
    {
        return Err(Fault::invalid_arg(
            "ter:ConfigModify",
            format!("CompressionType {compression:?} is not offered: None only"),
        ));
    }
    let status_asked = ["Status", "Position"].iter().any(|what| {
        configuration
            .find(&["PTZStatus", what])
            .is_some_and(|e| matches!(e.text.trim(), "true" | "1"))
    });
    if status_asked {
        return Err(Fault::invalid_arg(
            "ter:ConfigModify",
            "no PTZ: the stream has no PTZ status to carry",
        ));
    }
    let analytics = match configuration.child_text("Analytics") {
        None | Some("false") | Some("0") => false,
        Some("true") | Some("1") => true,
        Some(other) => {
            return Err(Fault::invalid_arg(
                "ter:ConfigModify",
                format!("Analytics is true or false, not {other:?}"),
            ))
        }
    };
    let events = configuration.child("Events").map(|e| {
        e.find(&["Filter", "TopicExpression"])
            .map(|t| t.text.trim().to_string())
            .unwrap_or_default()
    });
    if events.as_ref().is_some_and(|e| e.len() > 1024) {
        return Err(Fault::invalid_arg(
            "ter:ConfigModify",
            "the topic expression is too long",
        ));
    }
    let settings = MetadataSettings {
        name,
        analytics,
        events,
    };
    call.device.set_metadata_settings(token, settings)?;
    Ok("<tr2:SetMetadataConfigurationResponse/>".into())
}

pub(super) fn service_capabilities(_call: &Call<'_>) -> String {
    format!(
        "<tr2:Capabilities SnapshotUri=\"true\" Rotation=\"false\" VideoSourceMode=\"false\" OSD=\"false\" Mask=\"false\" SourceMask=\"false\">\
         <tr2:ProfileCapabilities MaximumNumberOfProfiles=\"{MAX_PROFILES}\" ConfigurationsSupported=\"VideoSource VideoEncoder Analytics Metadata\"/>\
         <tr2:StreamingCapabilities RTSPStreaming=\"true\" RTPMulticast=\"false\" RTP_RTSP_TCP=\"true\" NonAggregateControl=\"false\" \
         AutoStartMulticast=\"false\"/></tr2:Capabilities>"
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
