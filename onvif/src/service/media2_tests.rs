//! Media2's profile and metadata configuration management, checked as the ONVIF Media2
//! configuration device test specification checks it (test ids in the names).

use std::sync::Arc;

use crate::server::Device;
use crate::testing::{body, call, device};
use crate::xml::Element;

const OPERATOR: Option<(&str, &str)> = Some(("operator", "op"));
const MEDIA2: &str = "/onvif/media2_service";
const EVENTS: &str = "/onvif/events_service";

fn text(response: &crate::HttpResponse) -> String {
    String::from_utf8_lossy(&response.body).to_string()
}

async fn answer(device: &Arc<Device>, path: &str, request: &str) -> Element {
    let response = call(device, path, OPERATOR, request).await;
    assert_eq!(response.status, 200, "{request}: {}", text(&response));
    body(&response)
}

async fn refused(device: &Arc<Device>, request: &str, subcode: &str) {
    let response = call(device, MEDIA2, OPERATOR, request).await;
    // Sender faults answer 400, receiver faults (a conflict) 500.
    assert!([400, 500].contains(&response.status), "{request}");
    assert!(
        text(&response).contains(subcode),
        "{request}: {}",
        text(&response)
    );
}

/// A pull point on `topic`; returns its path.
async fn pull_point(device: &Arc<Device>, topic: &str) -> String {
    let created = answer(device, EVENTS, &format!(
        "<tev:CreatePullPointSubscription><tev:Filter><wsnt:TopicExpression Dialect=\"http://www.onvif.org/ver10/tev/topicExpression/ConcreteSet\">\
         {topic}</wsnt:TopicExpression></tev:Filter></tev:CreatePullPointSubscription>")).await;
    crate::testing::subscription_path(&created)
}

/// The Source items of the messages waiting at a pull point.
async fn pulled(device: &Arc<Device>, path: &str) -> Vec<Vec<(String, String)>> {
    let messages = answer(device, path,
        "<tev:PullMessages><tev:Timeout>PT0S</tev:Timeout><tev:MessageLimit>50</tev:MessageLimit></tev:PullMessages>").await;
    messages
        .children_named("NotificationMessage")
        .map(|m| {
            m.find(&["Message", "Message", "Source"])
                .map(|s| {
                    s.children
                        .iter()
                        .map(|i| {
                            (
                                i.attribute("Name").unwrap().to_string(),
                                i.attribute("Value").unwrap().to_string(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default()
        })
        .collect()
}

/// `(kind, token)` of a profile's configurations, from GetProfiles with `types`.
async fn configurations_of(
    device: &Arc<Device>,
    token: &str,
    types: &str,
) -> Vec<(String, String)> {
    let profiles = answer(
        device,
        MEDIA2,
        &format!("<tr2:GetProfiles><tr2:Token>{token}</tr2:Token>{types}</tr2:GetProfiles>"),
    )
    .await;
    let profile = profiles.child("Profiles").unwrap();
    profile
        .child("Configurations")
        .map(|c| {
            c.children
                .iter()
                .map(|e| (e.name.clone(), e.attribute("token").unwrap().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn media2_1_1_2_and_1_1_3_profiles_are_created_filled_emptied_deleted_and_announced() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("onvif.json");
    let (device, _) = device(Some(file.clone()));
    let changes = pull_point(&device, "tns1:Media/ProfileChanged").await;

    let created = answer(
        &device,
        MEDIA2,
        "<tr2:CreateProfile><tr2:Name>testMedia2</tr2:Name></tr2:CreateProfile>",
    )
    .await;
    let token = created.child_text("Token").unwrap().to_string();
    assert_eq!(
        pulled(&device, &changes).await,
        [vec![("Token".to_string(), token.clone())]]
    );
    let all = "<tr2:Type>All</tr2:Type>";
    assert!(configurations_of(&device, &token, all).await.is_empty());

    // Dependents need their video source; both together are fine.
    refused(&device, &format!("<tr2:AddConfiguration><tr2:ProfileToken>{token}</tr2:ProfileToken>\
        <tr2:Configuration><tr2:Type>Analytics</tr2:Type><tr2:Token>vac_door</tr2:Token></tr2:Configuration></tr2:AddConfiguration>"), "ter:ConfigurationConflict").await;
    answer(&device, MEDIA2, &format!("<tr2:AddConfiguration><tr2:ProfileToken>{token}</tr2:ProfileToken>\
        <tr2:Configuration><tr2:Type>VideoSource</tr2:Type><tr2:Token>vsc_door</tr2:Token></tr2:Configuration></tr2:AddConfiguration>")).await;
    // For a profile holding only a video source, its analytics and metadata configurations.
    for (operation, token_of) in [
        ("GetAnalyticsConfigurations", "vac_door"),
        ("GetMetadataConfigurations", "meta_door"),
    ] {
        let compatible = answer(
            &device,
            MEDIA2,
            &format!(
                "<tr2:{operation}><tr2:ProfileToken>{token}</tr2:ProfileToken></tr2:{operation}>"
            ),
        )
        .await;
        let tokens: Vec<&str> = compatible
            .children
            .iter()
            .filter_map(|c| c.attribute("token"))
            .collect();
        assert_eq!(tokens, [token_of], "{operation}");
    }
    answer(&device, MEDIA2, &format!("<tr2:AddConfiguration><tr2:ProfileToken>{token}</tr2:ProfileToken>\
        <tr2:Configuration><tr2:Type>Analytics</tr2:Type><tr2:Token>vac_door</tr2:Token></tr2:Configuration>\
        <tr2:Configuration><tr2:Type>Metadata</tr2:Type><tr2:Token>meta_door</tr2:Token></tr2:Configuration></tr2:AddConfiguration>")).await;
    assert_eq!(
        configurations_of(&device, &token, all).await,
        [
            ("VideoSource".to_string(), "vsc_door".to_string()),
            ("Analytics".into(), "vac_door".into()),
            ("Metadata".into(), "meta_door".into()),
        ]
    );
    // MEDIA2-1-1-4: a Type filter shows only that kind; no Type, no configurations.
    assert_eq!(
        configurations_of(&device, &token, "<tr2:Type>Analytics</tr2:Type>").await,
        [("Analytics".to_string(), "vac_door".to_string())]
    );
    assert!(configurations_of(&device, &token, "").await.is_empty());
    // Another source's configuration does not join a door profile.
    refused(&device, &format!("<tr2:AddConfiguration><tr2:ProfileToken>{token}</tr2:ProfileToken>\
        <tr2:Configuration><tr2:Type>Metadata</tr2:Type><tr2:Token>meta_lobby</tr2:Token></tr2:Configuration></tr2:AddConfiguration>"), "ter:ConfigurationConflict").await;
    refused(&device, &format!("<tr2:AddConfiguration><tr2:ProfileToken>{token}</tr2:ProfileToken>\
        <tr2:Configuration><tr2:Type>Metadata</tr2:Type><tr2:Token>meta_nowhere</tr2:Token></tr2:Configuration></tr2:AddConfiguration>"), "ter:NoConfig").await;

    // Kept across a restart.
    drop(device);
    let (device, _) = crate::testing::device(Some(file));
    let changes = pull_point(&device, "tns1:Media/ProfileChanged").await;
    assert_eq!(configurations_of(&device, &token, all).await.len(), 3);
    answer(&device, MEDIA2, &format!("<tr2:RemoveConfiguration><tr2:ProfileToken>{token}</tr2:ProfileToken>\
        <tr2:Configuration><tr2:Type>Analytics</tr2:Type></tr2:Configuration></tr2:RemoveConfiguration>")).await;
    assert_eq!(configurations_of(&device, &token, all).await.len(), 2);
    answer(
        &device,
        MEDIA2,
        &format!(
            "<tr2:RemoveConfiguration><tr2:ProfileToken>{token}</tr2:ProfileToken>\
        <tr2:Configuration><tr2:Type>All</tr2:Type></tr2:Configuration></tr2:RemoveConfiguration>"
        ),
    )
    .await;
    assert!(configurations_of(&device, &token, all).await.is_empty());
    answer(
        &device,
        MEDIA2,
        &format!("<tr2:DeleteProfile><tr2:Token>{token}</tr2:Token></tr2:DeleteProfile>"),
    )
    .await;
    assert_eq!(
        pulled(&device, &changes).await.len(),
        3,
        "remove, remove all, delete"
    );
    refused(
        &device,
        &format!("<tr2:GetProfiles><tr2:Token>{token}</tr2:Token></tr2:GetProfiles>"),
        "ter:NoProfile",
    )
    .await;
    refused(
        &device,
        "<tr2:DeleteProfile><tr2:Token>profile_door</tr2:Token></tr2:DeleteProfile>",
        "ter:DeletionOfFixedProfile",
    )
    .await;
}

#[tokio::test]
async fn media2_1_1_6_fixed_profiles_can_be_emptied_and_filled_again() {
    let (device, _) = device(None);
    let all = "<tr2:Type>All</tr2:Type>";
    let before = configurations_of(&device, "profile_door", all).await;
    assert_eq!(
        before.len(),
        4,
        "source, encoder, analytics, metadata: {before:?}"
    );
    answer(
        &device,
        MEDIA2,
        "<tr2:RemoveConfiguration><tr2:ProfileToken>profile_door</tr2:ProfileToken>\
        <tr2:Configuration><tr2:Type>All</tr2:Type></tr2:Configuration></tr2:RemoveConfiguration>",
    )
    .await;
    assert!(configurations_of(&device, "profile_door", all)
        .await
        .is_empty());
    let incomplete = call(&device, MEDIA2, OPERATOR,
        "<tr2:GetStreamUri><tr2:Protocol>RTSP</tr2:Protocol><tr2:ProfileToken>profile_door</tr2:ProfileToken></tr2:GetStreamUri>").await;
    assert!(text(&incomplete).contains("ter:IncompleteConfiguration"));
    let refs: String = before
        .iter()
        .map(|(kind, token)| format!("<tr2:Configuration><tr2:Type>{kind}</tr2:Type><tr2:Token>{token}</tr2:Token></tr2:Configuration>"))
        .collect();
    answer(&device, MEDIA2, &format!("<tr2:AddConfiguration><tr2:ProfileToken>profile_door</tr2:ProfileToken>{refs}</tr2:AddConfiguration>")).await;
    assert_eq!(
        configurations_of(&device, "profile_door", all).await,
        before
    );
    // Complete again, it streams from Vigil's RTSP server once that runs.
    device.set_metadata_rtsp_port(Some(8554));
    let uri = answer(&device, MEDIA2,
        "<tr2:GetStreamUri><tr2:Protocol>RTSP</tr2:Protocol><tr2:ProfileToken>profile_door</tr2:ProfileToken></tr2:GetStreamUri>").await;
    assert_eq!(
        uri.child_text("Uri"),
        Some("rtsp://192.0.2.1:8554/onvif/media/door")
    );
}

#[tokio::test]
async fn media2_8_1_1_metadata_configurations_are_set_read_back_and_announced() {
    let (device, _) = device(None);
    let changes = pull_point(&device, "tns1:Media/ConfigurationChanged").await;
    let options = answer(&device, MEDIA2,
        "<tr2:GetMetadataConfigurationOptions><tr2:ConfigurationToken>meta_door</tr2:ConfigurationToken></tr2:GetMetadataConfigurationOptions>").await;
    assert!(options
        .find(&["Options", "PTZStatusFilterOptions"])
        .is_some());
    for (name, analytics, events) in [("TestName1", "true", true), ("TestName2", "false", false)] {
        let events_xml = if events {
            "<tt:Events><tt:Filter><wsnt:TopicExpression Dialect=\"http://www.onvif.org/ver10/tev/topicExpression/ConcreteSet\">tns1:Media/ConfigurationChanged</wsnt:TopicExpression></tt:Filter></tt:Events>"
        } else {
            ""
        };
        answer(&device, MEDIA2, &format!("<tr2:SetMetadataConfiguration><tr2:Configuration token=\"meta_door\">\
            <tt:Name>{name}</tt:Name><tt:UseCount>1</tt:UseCount>{events_xml}<tt:Analytics>{analytics}</tt:Analytics>\
            <tt:Multicast><tt:Address><tt:Type>IPv4</tt:Type><tt:IPv4Address>0.0.0.0</tt:IPv4Address></tt:Address><tt:Port>0</tt:Port><tt:TTL>0</tt:TTL><tt:AutoStart>false</tt:AutoStart></tt:Multicast>\
            <tt:SessionTimeout>PT60S</tt:SessionTimeout></tr2:Configuration></tr2:SetMetadataConfiguration>")).await;
        assert_eq!(
            pulled(&device, &changes).await,
            [vec![
                ("Token".to_string(), "meta_door".to_string()),
                ("Type".into(), "Metadata".into())
            ]]
        );
        let read = answer(&device, MEDIA2,
            "<tr2:GetMetadataConfigurations><tr2:ConfigurationToken>meta_door</tr2:ConfigurationToken></tr2:GetMetadataConfigurations>").await;
        let configuration = read.child("Configurations").unwrap();
        assert_eq!(configuration.child_text("Name"), Some(name));
        assert_eq!(configuration.child_text("Analytics"), Some(analytics));
        assert_eq!(
            configuration
                .find(&["Events", "Filter", "TopicExpression"])
                .map(|t| t.text.trim()),
            events.then_some("tns1:Media/ConfigurationChanged")
        );
    }
    assert!(
        !device.metadata_settings("door").analytics,
        "the stream leaves the faces out"
    );
    assert!(device.metadata_settings("lobby").analytics);
    refused(&device, "<tr2:GetMetadataConfigurations><tr2:ConfigurationToken>meta_x</tr2:ConfigurationToken></tr2:GetMetadataConfigurations>", "ter:NoConfig").await;
    refused(&device, "<tr2:SetMetadataConfiguration><tr2:Configuration token=\"meta_x\"><tt:Name>x</tt:Name></tr2:Configuration></tr2:SetMetadataConfiguration>", "ter:NoConfig").await;
    // Only what the options offer: no compression, no PTZ status.
    let options = answer(&device, MEDIA2, "<tr2:GetMetadataConfigurationOptions><tr2:ConfigurationToken>meta_door</tr2:ConfigurationToken></tr2:GetMetadataConfigurationOptions>").await;
    let offered: Vec<&str> = options
        .find(&["Options", "Extension"])
        .map(|e| {
            e.children_named("CompressionType")
                .map(|c| c.text.trim())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(offered, ["None"]);
    refused(&device, "<tr2:SetMetadataConfiguration><tr2:Configuration token=\"meta_door\" CompressionType=\"GZIP\"><tt:Name>x</tt:Name></tr2:Configuration></tr2:SetMetadataConfiguration>", "ter:ConfigModify").await;
    refused(&device, "<tr2:SetMetadataConfiguration><tr2:Configuration token=\"meta_door\"><tt:Name>x</tt:Name><tt:PTZStatus><tt:Status>true</tt:Status><tt:Position>false</tt:Position></tt:PTZStatus></tr2:Configuration></tr2:SetMetadataConfiguration>", "ter:ConfigModify").await;
    answer(&device, MEDIA2, "<tr2:SetMetadataConfiguration><tr2:Configuration token=\"meta_door\" CompressionType=\"None\"><tt:Name>x</tt:Name><tt:PTZStatus><tt:Status>false</tt:Status><tt:Position>false</tt:Position></tt:PTZStatus></tr2:Configuration></tr2:SetMetadataConfiguration>").await;
}

#[tokio::test]
async fn set_synchronization_point_names_a_profile() {
    let (device, _) = device(None);
    let answered = answer(&device, MEDIA2, "<tr2:SetSynchronizationPoint><tr2:ProfileToken>profile_door</tr2:ProfileToken></tr2:SetSynchronizationPoint>").await;
    assert_eq!(answered.name, "SetSynchronizationPointResponse");
    refused(&device, "<tr2:SetSynchronizationPoint><tr2:ProfileToken>nope</tr2:ProfileToken></tr2:SetSynchronizationPoint>", "ter:NoProfile").await;
}
