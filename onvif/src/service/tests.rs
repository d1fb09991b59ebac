//! The services through `Device::handle`, with the sample product.

use std::time::{Duration, SystemTime};

use crate::device::{ElementItem, EventMessage};
use crate::soap::ns;
use crate::testing::{body, call, device};

const ADMIN: Option<(&str, &str)> = Some(("admin", "secret"));
const OPERATOR: Option<(&str, &str)> = Some(("operator", "op"));

fn subcodes(response: &crate::HttpResponse) -> String {
    String::from_utf8_lossy(&response.body).to_string()
}

#[tokio::test]
async fn scopes_change_persist_and_fixed_ones_stay() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("onvif.json");
    let (device, product) = device(Some(file.clone()));
    let scopes = |d| async move {
        let response = call(&d, "/onvif/device_service", ADMIN, "<tds:GetScopes/>").await;
        body(&response)
            .children_named("Scopes")
            .map(|s| {
                format!(
                    "{}={}",
                    s.child_text("ScopeDef").unwrap(),
                    s.child_text("ScopeItem").unwrap()
                )
            })
            .collect::<Vec<_>>()
    };
    let before = scopes(device.clone()).await;
    assert!(
        before.contains(&"Configurable=onvif://www.onvif.org/name/Test%20device".to_string()),
        "{before:?}"
    );
    assert!(before.contains(&"Fixed=onvif://www.onvif.org/Profile/Streaming".to_string()));

    let r = call(&device, "/onvif/device_service", ADMIN,
        "<tds:AddScopes><tds:ScopeItem>onvif://www.onvif.org/location/floor2</tds:ScopeItem></tds:AddScopes>").await;
    assert_eq!(r.status, 200, "{}", subcodes(&r));
    let r = call(&device, "/onvif/device_service", ADMIN,
        "<tds:RemoveScopes><tds:ScopeItem>onvif://www.onvif.org/Profile/Streaming</tds:ScopeItem></tds:RemoveScopes>").await;
    assert_eq!(r.status, 400);
    assert!(subcodes(&r).contains("ter:FixedScope"));
    let r = call(&device, "/onvif/device_service", ADMIN,
        "<tds:RemoveScopes><tds:ScopeItem>onvif://www.onvif.org/location/Lab</tds:ScopeItem></tds:RemoveScopes>").await;
    assert_eq!(r.status, 200, "{}", subcodes(&r));
    let r = call(
        &device,
        "/onvif/device_service",
        OPERATOR,
        "<tds:SetScopes><tds:Scopes>onvif://www.onvif.org/name/x</tds:Scopes></tds:SetScopes>",
    )
    .await;
    assert_eq!(r.status, 400, "an operator may not write system settings");
    let r = call(&device, "/onvif/device_service", ADMIN,
        "<tds:SetDiscoveryMode><tds:DiscoveryMode>NonDiscoverable</tds:DiscoveryMode></tds:SetDiscoveryMode>").await;
    assert_eq!(r.status, 200);

    // Successful changes are audited with who and from where; reads and refusals are not.
    let audited: Vec<(String, String)> = product
        .audits
        .lock()
        .unwrap()
        .iter()
        .map(|a| (a.user.clone(), a.operation.clone()))
        .collect();
    let admin = |op: &str| ("admin".to_string(), op.to_string());
    assert_eq!(
        audited,
        [
            admin("AddScopes"),
            admin("RemoveScopes"),
            admin("SetDiscoveryMode")
        ]
    );

    // A new device on the same settings file remembers all of it.
    let (again, _) = crate::testing::device(Some(file));
    let after = scopes(again.clone()).await;
    assert!(
        after.contains(&"Configurable=onvif://www.onvif.org/location/floor2".to_string()),
        "{after:?}"
    );
    assert!(!after.iter().any(|s| s.ends_with("/location/Lab")));
    assert!(!again.discoverable());
}

#[tokio::test]
async fn users_are_managed_by_administrators_only() {
    let (device, _) = device(None);
    let create =
        "<tds:CreateUsers><tds:User><tt:Username>vms</tt:Username><tt:Password>pw1</tt:Password>\
                  <tt:UserLevel>User</tt:UserLevel></tds:User></tds:CreateUsers>";
    assert_eq!(
        call(&device, "/onvif/device_service", OPERATOR, create)
            .await
            .status,
        400
    );
    assert_eq!(
        call(&device, "/onvif/device_service", ADMIN, create)
            .await
            .status,
        200
    );
    let clash = call(&device, "/onvif/device_service", ADMIN, create).await;
    assert!(subcodes(&clash).contains("ter:UsernameClash"));
    // Shorter than the device's policy (3 characters here): refused, whoever asks.
    let weak = call(
        &device,
        "/onvif/device_service",
        ADMIN,
        "<tds:CreateUsers><tds:User><tt:Username>eve</tt:Username><tt:Password>x</tt:Password>\
         <tt:UserLevel>User</tt:UserLevel></tds:User></tds:CreateUsers>",
    )
    .await;
    assert!(subcodes(&weak).contains("ter:PasswordTooWeak"), "{weak:?}");
    let users = body(&call(&device, "/onvif/device_service", ADMIN, "<tds:GetUsers/>").await);
    let names: Vec<String> = users
        .children_named("User")
        .map(|u| u.child_text("Username").unwrap().to_string())
        .collect();
    assert_eq!(names, ["admin", "operator", "vms"]);
    assert!(!String::from_utf8_lossy(
        &call(&device, "/onvif/device_service", ADMIN, "<tds:GetUsers/>")
            .await
            .body
    )
    .contains("secret"));
    // The new user can read media, with its new password after SetUser.
    let set = "<tds:SetUser><tds:User><tt:Username>vms</tt:Username><tt:Password>pw2</tt:Password>\
               <tt:UserLevel>Operator</tt:UserLevel></tds:User></tds:SetUser>";
    assert_eq!(
        call(
            &device,
            "/onvif/media_service",
            Some(("vms", "pw1")),
            "<trt:GetProfiles/>"
        )
        .await
        .status,
        200
    );
    assert_eq!(
        call(&device, "/onvif/device_service", ADMIN, set)
            .await
            .status,
        200
    );
    assert_eq!(
        call(
            &device,
            "/onvif/media_service",
            Some(("vms", "pw1")),
            "<trt:GetProfiles/>"
        )
        .await
        .status,
        400
    );
    assert_eq!(
        call(
            &device,
            "/onvif/media_service",
            Some(("vms", "pw2")),
            "<trt:GetProfiles/>"
        )
        .await
        .status,
        200
    );
    let last_admin = call(
        &device,
        "/onvif/device_service",
        ADMIN,
        "<tds:DeleteUsers><tds:Username>admin</tds:Username></tds:DeleteUsers>",
    )
    .await;
    assert!(subcodes(&last_admin).contains("ter:FixedUser"));
    assert_eq!(
        call(
            &device,
            "/onvif/device_service",
            ADMIN,
            "<tds:DeleteUsers><tds:Username>vms</tds:Username></tds:DeleteUsers>"
        )
        .await
        .status,
        200
    );
}

#[tokio::test(start_paused = true)]
async fn system_reboot_restarts_after_answering() {
    let (device, product) = device(None);
    let r = call(
        &device,
        "/onvif/device_service",
        ADMIN,
        "<tds:SystemReboot/>",
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(!product.rebooted.load(std::sync::atomic::Ordering::SeqCst));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(product.rebooted.load(std::sync::atomic::Ordering::SeqCst));
    assert_eq!(
        call(
            &device,
            "/onvif/device_service",
            OPERATOR,
            "<tds:SystemReboot/>"
        )
        .await
        .status,
        400
    );
}

#[tokio::test]
async fn media_and_media2_describe_each_source() {
    let (device, _) = device(None);
    let profiles = body(
        &call(
            &device,
            "/onvif/media_service",
            OPERATOR,
            "<trt:GetProfiles/>",
        )
        .await,
    );
    let tokens: Vec<&str> = profiles
        .children_named("Profiles")
        .map(|p| p.attribute("token").unwrap())
        .collect();
    assert_eq!(tokens, ["profile_door", "profile_lobby", "device"]);
    let encoder = profiles.children[0]
        .find(&["VideoEncoderConfiguration", "Encoding"])
        .unwrap();
    assert_eq!(encoder.text, "H264");
    let unknown = call(
        &device,
        "/onvif/media_service",
        OPERATOR,
        "<trt:GetStreamUri><trt:ProfileToken>nope</trt:ProfileToken></trt:GetStreamUri>",
    )
    .await;
    assert!(subcodes(&unknown).contains("ter:NoProfile"));
    let snapshot = body(&call(&device, "/onvif/media_service", OPERATOR,
        "<trt:GetSnapshotUri><trt:ProfileToken>profile_door</trt:ProfileToken></trt:GetSnapshotUri>").await);
    assert_eq!(
        snapshot.find(&["MediaUri", "Uri"]).unwrap().text,
        "http://192.0.2.1:8080/onvif/snapshot/door.jpg"
    );

    let media2 = body(
        &call(
            &device,
            "/onvif/media2_service",
            OPERATOR,
            "<tr2:GetProfiles><tr2:Type>All</tr2:Type></tr2:GetProfiles>",
        )
        .await,
    );
    let encodings: Vec<&str> = media2
        .children_named("Profiles")
        .filter_map(|p| p.find(&["Configurations", "VideoEncoder", "Encoding"]))
        .map(|e| e.text.as_str())
        .collect();
    assert_eq!(encodings, ["H264", "H265"]);
    // Without Vigil's RTSP server there is no stream to hand out: never the camera's own.
    let uri = call(&device, "/onvif/media2_service", OPERATOR,
        "<tr2:GetStreamUri><tr2:Protocol>RTSP</tr2:Protocol><tr2:ProfileToken>profile_lobby</tr2:ProfileToken></tr2:GetStreamUri>").await;
    assert!(subcodes(&uri).contains("ter:IncompleteConfiguration"));
    let one = body(&call(&device, "/onvif/media2_service", OPERATOR,
        "<tr2:GetVideoEncoderConfigurations><tr2:ConfigurationToken>vec_door</tr2:ConfigurationToken></tr2:GetVideoEncoderConfigurations>").await);
    assert_eq!(one.children.len(), 1);
}

#[tokio::test]
async fn snapshots_need_digest_credentials() {
    let (device, _) = device(None);
    let request = |path, authorization| crate::HttpRequest {
        method: "GET",
        path,
        host: None,
        authorization,
        body: b"",
        peer: "127.0.0.1:1".parse().unwrap(),
        https: false,
    };
    let anonymous = device
        .handle(request("/onvif/snapshot/door.jpg", None))
        .await;
    assert_eq!(anonymous.status, 401);
    assert_eq!(
        anonymous
            .headers
            .iter()
            .filter(|(n, _)| *n == "WWW-Authenticate")
            .count(),
        2
    );
    assert_eq!(
        device
            .handle(request("/onvif/snapshot/nothing", None))
            .await
            .status,
        404
    );
    // Basic first (node-onvif does): told to use Digest, not refused as malformed.
    let basic = device
        .handle(request(
            "/onvif/snapshot/door.jpg",
            Some("Basic b3BlcmF0b3I6b3A="),
        ))
        .await;
    assert_eq!(basic.status, 401);
    let challenge = basic
        .headers
        .iter()
        .find(|(n, v)| *n == "WWW-Authenticate" && v.contains("MD5"))
        .map(|(_, v)| v.clone())
        .expect("a Digest challenge");
    // A malformed Digest header is still a bad request.
    let garbled = device
        .handle(request("/onvif/snapshot/door.jpg", Some("Digest nonsense")))
        .await;
    assert_eq!(garbled.status, 400);
    // Signed in: a camera's frame; a camera without one yet: try again soon; no camera: 404.
    let signed = |uri: &str, nc: &str| {
        crate::auth::digest::tests::answer(&challenge, "operator", "op", nc, uri)
    };
    let door = signed("/onvif/snapshot/door.jpg", "00000001");
    let frame = device
        .handle(request("/onvif/snapshot/door.jpg", Some(&door)))
        .await;
    assert_eq!(frame.status, 200);
    let lobby = signed("/onvif/snapshot/lobby.jpg", "00000002");
    let not_yet = device
        .handle(request("/onvif/snapshot/lobby.jpg", Some(&lobby)))
        .await;
    assert_eq!(not_yet.status, 503);
    assert!(not_yet
        .headers
        .iter()
        .any(|(n, v)| *n == "Retry-After" && v == "2"));
    let stranger = signed("/onvif/snapshot/garden.jpg", "00000003");
    let none = device
        .handle(request("/onvif/snapshot/garden.jpg", Some(&stranger)))
        .await;
    assert_eq!(none.status, 404);
}

#[tokio::test]
async fn event_properties_pull_points_and_push_refusals() {
    let (device, _) = device(None);
    let properties = body(
        &call(
            &device,
            "/onvif/events_service",
            OPERATOR,
            "<tev:GetEventProperties/>",
        )
        .await,
    );
    let face = properties
        .find(&["TopicSet", "RuleEngine", "Recognition", "Face"])
        .expect("topic tree");
    assert_eq!(face.attribute("topic"), Some("true"));
    assert!(face
        .find(&["MessageDescription", "Data", "SimpleItemDescription"])
        .is_some());
    let element = face
        .find(&["MessageDescription", "Data", "ElementItemDescription"])
        .expect("element items are described");
    assert_eq!(element.attribute("Type"), Some("tt:ObjectId"));

    let created = body(&call(&device, "/onvif/events_service", OPERATOR,
        "<tev:CreatePullPointSubscription><tev:Filter><wsnt:TopicExpression Dialect=\"http://www.onvif.org/ver10/tev/topicExpression/ConcreteSet\">\
         tns1:RuleEngine/Recognition/Face</wsnt:TopicExpression></tev:Filter><tev:InitialTerminationTime>PT30S</tev:InitialTerminationTime>\
         </tev:CreatePullPointSubscription>").await);
    let path = crate::testing::subscription_path(&created);
    for topic in [
        "tns1:VideoSource/SignalLoss",
        "tns1:RuleEngine/Recognition/Face",
    ] {
        device.events().publish(EventMessage {
            topic: topic.into(),
            time: SystemTime::now(),
            property: None,
            source: vec![("VideoSourceConfigurationToken".into(), "vsc_door".into())],
            key: Vec::new(),
            data: vec![("Likelihood".into(), "0.9".into())],
            data_elements: vec![
                ("ObjectId".into(), ElementItem::ObjectId(7)),
                (
                    "BoundingBox".into(),
                    ElementItem::Rectangle {
                        left: -0.5,
                        top: 0.5,
                        right: 0.25,
                        bottom: -0.25,
                    },
                ),
            ],
            image_jpeg: Some(vec![0xff, 0xd8]),
        });
    }
    let pulled = body(&call(&device, &path, OPERATOR,
        "<tev:PullMessages><tev:Timeout>PT1S</tev:Timeout><tev:MessageLimit>10</tev:MessageLimit></tev:PullMessages>").await);
    let messages: Vec<_> = pulled.children_named("NotificationMessage").collect();
    assert_eq!(messages.len(), 1, "the filter lets only the face through");
    assert_eq!(
        messages[0].child_text("Topic"),
        Some("tns1:RuleEngine/Recognition/Face")
    );
    let data = messages[0].find(&["Message", "Message", "Data"]).unwrap();
    let image = data
        .children
        .iter()
        .find(|i| i.attribute("Name") == Some("ImageUri"))
        .unwrap();
    assert!(image.attribute("Value").unwrap().contains("/onvif/images/"));
    // Element items follow the simple ones, each holding its typed element.
    let elements: Vec<_> = data.children_named("ElementItem").collect();
    assert_eq!(elements.len(), 2);
    assert_eq!(
        data.children.last().and_then(|i| i.attribute("Name")),
        Some("BoundingBox")
    );
    let object = elements[0].child("ObjectId").expect("tt:ObjectId");
    assert_eq!(object.attribute("ObjectId"), Some("7"));
    let rectangle = elements[1].child("Rectangle").expect("tt:Rectangle");
    assert_eq!(rectangle.attribute("left"), Some("-0.5000"));
    assert_eq!(rectangle.attribute("bottom"), Some("-0.2500"));

    let renew = call(
        &device,
        &path,
        OPERATOR,
        "<wsnt:Renew><wsnt:TerminationTime>PT60S</wsnt:TerminationTime></wsnt:Renew>",
    )
    .await;
    assert_eq!(renew.status, 200);
    assert_eq!(
        call(&device, &path, OPERATOR, "<wsnt:Unsubscribe/>")
            .await
            .status,
        200
    );
    let gone = call(&device, &path, OPERATOR, "<tev:PullMessages><tev:Timeout>PT1S</tev:Timeout><tev:MessageLimit>1</tev:MessageLimit></tev:PullMessages>").await;
    assert!(subcodes(&gone).contains("ResourceUnknownFault"));

    for consumer in [
        "http://203.0.113.5/notify",
        "http://consumer.example/notify",
        "https://127.0.0.1/x",
    ] {
        let refused = call(&device, "/onvif/events_service", OPERATOR, &format!(
            "<wsnt:Subscribe><wsnt:ConsumerReference><wsa:Address>{consumer}</wsa:Address></wsnt:ConsumerReference></wsnt:Subscribe>")).await;
        assert!(
            subcodes(&refused).contains("SubscribeCreationFailedFault"),
            "{consumer} accepted"
        );
    }
    let content_filter = call(&device, "/onvif/events_service", OPERATOR,
        "<tev:CreatePullPointSubscription><tev:Filter><wsnt:MessageContent Dialect=\"x\">boolean(1)</wsnt:MessageContent></tev:Filter></tev:CreatePullPointSubscription>").await;
    assert!(subcodes(&content_filter).contains("InvalidMessageContentExpressionFault"));
    let _ = ns::TEV;
}

#[tokio::test]
async fn metadata_profiles_name_the_rtsp_server_while_it_runs() {
    let (device, _) = device(None);
    let media2_tokens = |d: std::sync::Arc<crate::Device>| async move {
        body(&call(&d, "/onvif/media2_service", OPERATOR, "<tr2:GetProfiles/>").await)
            .children_named("Profiles")
            .map(|p| p.attribute("token").unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        media2_tokens(device.clone()).await,
        ["profile_door", "profile_lobby", "device"]
    );
    device.set_metadata_rtsp_port(Some(8554));
    assert_eq!(
        media2_tokens(device.clone()).await,
        [
            "profile_door",
            "profile_lobby",
            "device",
            "metadata_door",
            "metadata_lobby"
        ]
    );
    let one = body(
        &call(
            &device,
            "/onvif/media2_service",
            OPERATOR,
            "<tr2:GetProfiles><tr2:Token>metadata_door</tr2:Token><tr2:Type>Metadata</tr2:Type></tr2:GetProfiles>",
        )
        .await,
    );
    let profile = one.child("Profiles").unwrap();
    assert!(profile.find(&["Configurations", "Metadata"]).is_some());
    assert!(profile.find(&["Configurations", "VideoEncoder"]).is_none());
    let uri = body(&call(&device, "/onvif/media2_service", OPERATOR,
        "<tr2:GetStreamUri><tr2:Protocol>RtspUnicast</tr2:Protocol><tr2:ProfileToken>metadata_door</tr2:ProfileToken></tr2:GetStreamUri>").await);
    assert_eq!(
        uri.child_text("Uri"),
        Some("rtsp://192.0.2.1:8554/onvif/metadata/door")
    );
    // The cameras' own profiles stream the camera's video relayed by Vigil, with the
    // metadata: before the camera's codec is known, and while it can be relayed.
    let camera_uri = |protocol: &'static str| {
        let device = device.clone();
        async move {
            call(&device, "/onvif/media2_service", OPERATOR, &format!(
                "<tr2:GetStreamUri><tr2:Protocol>{protocol}</tr2:Protocol><tr2:ProfileToken>profile_door</tr2:ProfileToken></tr2:GetStreamUri>")).await
        }
    };
    let relayed = Some("rtsp://192.0.2.1:8554/onvif/media/door");
    assert_eq!(body(&camera_uri("RTSP").await).child_text("Uri"), relayed);
    device.set_video_relayed("door", true);
    assert_eq!(body(&camera_uri("RTSP").await).child_text("Uri"), relayed);
    assert_eq!(
        body(&camera_uri("RtspOverHttp").await).child_text("Uri"),
        Some("http://192.0.2.1:8554/onvif/media/door")
    );
    let media1 = body(&call(&device, "/onvif/media_service", OPERATOR,
        "<trt:GetStreamUri><trt:StreamSetup><tt:Stream>RTP-Unicast</tt:Stream><tt:Transport><tt:Protocol>RTSP</tt:Protocol></tt:Transport></trt:StreamSetup><trt:ProfileToken>profile_door</trt:ProfileToken></trt:GetStreamUri>").await);
    assert_eq!(
        media1.find(&["MediaUri", "Uri"]).map(|u| u.text.as_str()),
        relayed
    );
    // A camera whose codec cannot be relayed has no stream: still not the camera's.
    device.set_video_relayed("door", false);
    let refused = camera_uri("RTSP").await;
    assert!(subcodes(&refused).contains("ter:IncompleteConfiguration"));
    assert!(!subcodes(&refused).contains("10.0.0.9"));
    device.set_video_relayed("door", true);
    let encoders = body(&call(&device, "/onvif/media2_service", OPERATOR,
        "<tr2:GetVideoEncoderConfigurations><tr2:ProfileToken>metadata_door</tr2:ProfileToken></tr2:GetVideoEncoderConfigurations>").await);
    // With a profile, Media2 lists the configurations compatible with it: its source's
    // encoder, which a client may add.
    let tokens: Vec<&str> = encoders
        .children
        .iter()
        .filter_map(|c| c.attribute("token"))
        .collect();
    assert_eq!(tokens, ["vec_door"]);
    let media1 = body(&call(&device, "/onvif/media_service", OPERATOR,
        "<trt:GetStreamUri><trt:StreamSetup><tt:Stream>RTP-Unicast</tt:Stream><tt:Transport><tt:Protocol>RTSP</tt:Protocol></tt:Transport></trt:StreamSetup><trt:ProfileToken>metadata_lobby</trt:ProfileToken></trt:GetStreamUri>").await);
    assert_eq!(
        media1.find(&["MediaUri", "Uri"]).unwrap().text,
        "rtsp://192.0.2.1:8554/onvif/metadata/lobby"
    );
    let profile = body(
        &call(
            &device,
            "/onvif/media_service",
            OPERATOR,
            "<trt:GetProfile><trt:ProfileToken>metadata_lobby</trt:ProfileToken></trt:GetProfile>",
        )
        .await,
    );
    assert!(profile
        .find(&["Profile", "MetadataConfiguration"])
        .is_some());
    let tunnelled = body(&call(&device, "/onvif/media2_service", OPERATOR,
        "<tr2:GetStreamUri><tr2:Protocol>RtspOverHttp</tr2:Protocol><tr2:ProfileToken>metadata_door</tr2:ProfileToken></tr2:GetStreamUri>").await);
    assert_eq!(
        tunnelled.child_text("Uri"),
        Some("http://192.0.2.1:8554/onvif/metadata/door")
    );
    let protocols = body(
        &call(
            &device,
            "/onvif/device_service",
            ADMIN,
            "<tds:GetNetworkProtocols/>",
        )
        .await,
    );
    let rtsp = protocols
        .children_named("NetworkProtocols")
        .find(|p| p.child_text("Name") == Some("RTSP"))
        .expect("RTSP listed");
    assert_eq!(rtsp.child_text("Port"), Some("8554"));
    device.set_metadata_rtsp_port(None);
    assert_eq!(
        media2_tokens(device.clone()).await,
        ["profile_door", "profile_lobby", "device"]
    );
}

/// Two pull points at once (Profile M asks for at least two), each filtered by topic and by
/// message content in the ItemFilter dialect: each gets only its own source's faces.
#[tokio::test]
async fn pull_points_filter_by_topic_and_message_content() {
    let (device, _) = device(None);
    let subscribe = |source: &'static str| {
        let device = device.clone();
        async move {
            let created = body(&call(&device, "/onvif/events_service", OPERATOR, &format!(
                "<tev:CreatePullPointSubscription><tev:Filter>\
                 <wsnt:TopicExpression Dialect=\"http://www.onvif.org/ver10/tev/topicExpression/ConcreteSet\">tns1:RuleEngine/Recognition/Face</wsnt:TopicExpression>\
                 <wsnt:MessageContent Dialect=\"http://www.onvif.org/ver10/tev/messageContentFilter/ItemFilter\">\
                 boolean(//tt:Source/tt:SimpleItem[@Name=\"VideoSource\" and @Value=\"{source}\"])</wsnt:MessageContent>\
                 </tev:Filter></tev:CreatePullPointSubscription>")).await);
            crate::testing::subscription_path(&created)
        }
    };
    let door = subscribe("door").await;
    let lobby = subscribe("lobby").await;
    for (topic, source) in [
        ("tns1:RuleEngine/Recognition/Face", "door"),
        ("tns1:RuleEngine/Recognition/Face", "lobby"),
        ("tns1:RuleEngine/Recognition/Face", "lobby"),
        ("tns1:VideoSource/SignalLoss", "door"),
    ] {
        device.events().publish(EventMessage {
            topic: topic.into(),
            time: SystemTime::now(),
            property: None,
            source: vec![("VideoSource".into(), source.into())],
            key: Vec::new(),
            data: Vec::new(),
            data_elements: Vec::new(),
            image_jpeg: None,
        });
    }
    for (path, expected) in [(&door, 1), (&lobby, 2)] {
        let pulled = body(&call(&device, path, OPERATOR,
            "<tev:PullMessages><tev:Timeout>PT0S</tev:Timeout><tev:MessageLimit>10</tev:MessageLimit></tev:PullMessages>").await);
        assert_eq!(
            pulled.children_named("NotificationMessage").count(),
            expected,
            "{path}"
        );
    }
    let bad = call(&device, "/onvif/events_service", OPERATOR,
        "<tev:CreatePullPointSubscription><tev:Filter><wsnt:MessageContent Dialect=\"http://www.onvif.org/ver10/tev/messageContentFilter/ItemFilter\">\
         count(//tt:SimpleItem) &gt; 1</wsnt:MessageContent></tev:Filter></tev:CreatePullPointSubscription>").await;
    assert!(subcodes(&bad).contains("InvalidMessageContentExpressionFault"));
}
