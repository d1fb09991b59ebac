//! The Analytics service and Media2's analytics configurations, checked as the ONVIF
//! Analytics and Media2 device test specifications check them (test ids in the names).

use crate::testing::{body, call, device};
use crate::xml::Element;

const OPERATOR: Option<(&str, &str)> = Some(("operator", "op"));
const ANALYTICS: &str = "/onvif/analytics_service";
const MEDIA2: &str = "/onvif/media2_service";
const EVENTS: &str = "/onvif/events_service";

fn text(response: &crate::HttpResponse) -> String {
    String::from_utf8_lossy(&response.body).to_string()
}

async fn answer(
    device: &std::sync::Arc<crate::server::Device>,
    path: &str,
    request: &str,
) -> Element {
    let response = call(device, path, OPERATOR, request).await;
    assert_eq!(response.status, 200, "{request}: {}", text(&response));
    body(&response)
}

/// Media2 GetAnalyticsConfigurations without arguments: the tokens every test iterates.
async fn configuration_tokens(device: &std::sync::Arc<crate::server::Device>) -> Vec<String> {
    let all = answer(device, MEDIA2, "<tr2:GetAnalyticsConfigurations/>").await;
    all.children_named("Configurations")
        .map(|c| c.attribute("token").unwrap().to_string())
        .collect()
}

fn descriptions(items: &Element) -> Vec<(&str, &str, &str)> {
    items
        .children
        .iter()
        .map(|d| {
            (
                d.name.as_str(),
                d.attribute("Name").unwrap(),
                d.attribute("Type").unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn analytics_7_1_1_and_6_1_1_the_face_recognition_rule_is_described_as_the_spec_says() {
    let (device, _) = device(None);
    let tokens = configuration_tokens(&device).await;
    assert_eq!(
        tokens,
        ["vac_door", "vac_lobby"],
        "MEDIA2 9-1-1: one per source"
    );
    for token in tokens {
        let supported = answer(&device, ANALYTICS, &format!(
            "<tan:GetSupportedRules><tan:ConfigurationToken>{token}</tan:ConfigurationToken></tan:GetSupportedRules>")).await;
        let rules: Vec<&Element> = supported
            .find(&["SupportedRules"])
            .unwrap()
            .children_named("RuleDescription")
            .collect();
        assert_eq!(rules.len(), 1);
        let rule = rules[0];
        assert_eq!(rule.attribute("Name"), Some("tt:FaceRecognition"));
        assert!(
            rule.attribute("maxInstances")
                .unwrap()
                .parse::<u32>()
                .unwrap()
                > 0
        );
        let parameters = descriptions(rule.child("Parameters").unwrap());
        assert!(parameters.contains(&("SimpleItemDescription", "IncludeImage", "xs:string")));
        let messages = rule.child("Messages").unwrap();
        assert_ne!(messages.attribute("IsProperty"), Some("true"));
        let source = descriptions(messages.child("Source").unwrap());
        assert!(source.contains(&("SimpleItemDescription", "VideoSource", "tt:ReferenceToken")));
        assert!(source.contains(&("SimpleItemDescription", "Rule", "xs:string")));
        let data = descriptions(messages.child("Data").unwrap());
        assert!(data.contains(&("SimpleItemDescription", "Likelihood", "xs:float")));
        let expected = [
            ("SimpleItemDescription", "Label", "xs:string"),
            ("SimpleItemDescription", "ImageUri", "xs:anyURI"),
            ("SimpleItemDescription", "EnrollmentID", "xs:string"),
            ("SimpleItemDescription", "RefImageUri", "xs:anyURI"),
            ("ElementItemDescription", "Image", "xs:base64Binary"),
            ("ElementItemDescription", "BoundingBox", "tt:Rectangle"),
        ];
        for (kind, name, xml_type) in &data {
            if let Some(want) = expected.iter().find(|(_, n, _)| n == name) {
                assert_eq!((*kind, *xml_type), (want.0, want.2), "{name}");
            }
        }
        // Item names are unique across Source, Key and Data.
        let mut names: Vec<&str> = source.iter().chain(&data).map(|d| d.1).collect();
        let count = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), count);
        // The topic format check refuses any whitespace.
        assert_eq!(
            messages.child("ParentTopic").map(|t| t.text.as_str()),
            Some("tns1:RuleEngine/Recognition/Face")
        );
    }
    let unknown = call(&device, ANALYTICS, OPERATOR,
        "<tan:GetSupportedRules><tan:ConfigurationToken>vac_nowhere</tan:ConfigurationToken></tan:GetSupportedRules>").await;
    assert_eq!(unknown.status, 400);
    assert!(text(&unknown).contains("ter:NoConfig"));
}

#[tokio::test]
async fn analytics_7_1_2_and_6_1_2_one_option_per_rule_type_with_its_rule_type() {
    let (device, _) = device(None);
    let typed = answer(&device, ANALYTICS,
        "<tan:GetRuleOptions><tan:RuleType>tt:FaceRecognition</tan:RuleType><tan:ConfigurationToken>vac_door</tan:ConfigurationToken></tan:GetRuleOptions>").await;
    let options: Vec<&Element> = typed.children_named("RuleOptions").collect();
    assert_eq!(options.len(), 1, "the test tool wants exactly one");
    assert_eq!(options[0].attribute("Name"), Some("IncludeImage"));
    assert_eq!(options[0].attribute("RuleType"), Some("tt:FaceRecognition"));
    assert!(options[0].attribute("AnalyticsModule").is_none());
    let values: Vec<&str> = options[0]
        .child("StringItems")
        .expect("IncludeImage's values as StringItems")
        .children_named("Item")
        .map(|i| i.text.as_str())
        .collect();
    assert_eq!(values, ["LocalStorage"]);
    let untyped = answer(&device, ANALYTICS,
        "<tan:GetRuleOptions><tan:ConfigurationToken>vac_door</tan:ConfigurationToken></tan:GetRuleOptions>").await;
    assert!(untyped
        .children_named("RuleOptions")
        .all(|o| o.attribute("RuleType") == Some("tt:FaceRecognition")));
    let unknown = call(&device, ANALYTICS, OPERATOR,
        "<tan:GetRuleOptions><tan:RuleType>tt:LineCounting</tan:RuleType><tan:ConfigurationToken>vac_door</tan:ConfigurationToken></tan:GetRuleOptions>").await;
    assert!(text(&unknown).contains("ter:RuleNotExistent"));
}

/// The rules of a configuration as `(name, IncludeImage, Watchlist)`, from GetRules and from
/// GetAnalyticsConfigurations, which must agree (ANALYTICS-6-1-4, MEDIA2-9-1-2).
async fn rules(
    device: &std::sync::Arc<crate::server::Device>,
    token: &str,
) -> Vec<(String, String, Option<String>)> {
    let read = |rule: &Element| {
        let item = |name: &str| {
            rule.child("Parameters")?
                .children_named("SimpleItem")
                .find(|i| i.attribute("Name") == Some(name))
                .and_then(|i| i.attribute("Value"))
                .map(str::to_string)
        };
        assert_eq!(rule.attribute("Type"), Some("tt:FaceRecognition"));
        (
            rule.attribute("Name").unwrap().to_string(),
            item("IncludeImage").unwrap_or_default(),
            item("Watchlist"),
        )
    };
    let got = answer(
        device,
        ANALYTICS,
        &format!(
            "<tan:GetRules><tan:ConfigurationToken>{token}</tan:ConfigurationToken></tan:GetRules>"
        ),
    )
    .await;
    let from_rules: Vec<_> = got.children_named("Rule").map(read).collect();
    let configuration = answer(device, MEDIA2, &format!(
        "<tr2:GetAnalyticsConfigurations><tr2:ConfigurationToken>{token}</tr2:ConfigurationToken></tr2:GetAnalyticsConfigurations>")).await;
    let configurations: Vec<&Element> = configuration.children_named("Configurations").collect();
    assert_eq!(configurations.len(), 1);
    assert_eq!(configurations[0].attribute("token"), Some(token));
    let from_configuration: Vec<_> = configurations[0]
        .child("RuleEngineConfiguration")
        .unwrap()
        .children_named("Rule")
        .map(read)
        .collect();
    assert_eq!(from_rules, from_configuration);
    from_rules
}

#[tokio::test]
async fn analytics_6_1_4_to_6_1_6_rules_are_created_modified_deleted_kept_and_announced() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("onvif.json");
    let (device, _) = device(Some(file.clone()));
    let defaults = rules(&device, "vac_door").await;
    assert_eq!(
        defaults,
        [
            ("Staff".into(), "LocalStorage".into(), Some("staff".into())),
            (
                "Banned".into(),
                "LocalStorage".into(),
                Some("banned".into())
            ),
        ],
        "one rule per watchlist until a client changes them"
    );

    let created = answer(&device, EVENTS,
        "<tev:CreatePullPointSubscription><tev:Filter><wsnt:TopicExpression Dialect=\"http://www.onvif.org/ver10/tev/topicExpression/ConcreteSet\">\
         tns1:Media/ConfigurationChanged</wsnt:TopicExpression></tev:Filter></tev:CreatePullPointSubscription>").await;
    let pull_point = crate::testing::subscription_path(&created);

    // A random name and empty parameters: the test tool's rule.
    let create = "<tan:CreateRules><tan:ConfigurationToken>vac_door</tan:ConfigurationToken>\
        <tan:Rule Name=\"x7Qz\" Type=\"tt:FaceRecognition\"><tt:Parameters/></tan:Rule></tan:CreateRules>";
    answer(&device, ANALYTICS, create).await;
    let after = rules(&device, "vac_door").await;
    assert_eq!(after.len(), 3);
    assert_eq!(
        after[2],
        ("x7Qz".into(), "LocalStorage".into(), None),
        "every list, pictures by URI"
    );
    assert_eq!(
        rules(&device, "vac_lobby").await,
        defaults,
        "the other source keeps its rules"
    );
    let again = call(&device, ANALYTICS, OPERATOR, create).await;
    assert!(
        text(&again).contains("ter:RuleAlreadyExistent"),
        "{}",
        text(&again)
    );

    let pulled = answer(&device, &pull_point,
        "<tev:PullMessages><tev:Timeout>PT1S</tev:Timeout><tev:MessageLimit>10</tev:MessageLimit></tev:PullMessages>").await;
    let changed: Vec<&Element> = pulled.children_named("NotificationMessage").collect();
    assert_eq!(changed.len(), 1, "one ConfigurationChanged per change");
    let source: Vec<(&str, &str)> = changed[0]
        .find(&["Message", "Message", "Source"])
        .unwrap()
        .children
        .iter()
        .map(|i| (i.attribute("Name").unwrap(), i.attribute("Value").unwrap()))
        .collect();
    assert_eq!(source, [("Token", "vac_door"), ("Type", "Analytics")]);

    // Only the parameter sent changes.
    answer(&device, ANALYTICS, "<tan:ModifyRules><tan:ConfigurationToken>vac_door</tan:ConfigurationToken>\
        <tan:Rule Name=\"Staff\" Type=\"tt:FaceRecognition\"><tt:Parameters><tt:SimpleItem Name=\"IncludeImage\" Value=\"\"/></tt:Parameters></tan:Rule></tan:ModifyRules>").await;
    assert_eq!(
        rules(&device, "vac_door").await[0],
        ("Staff".into(), String::new(), Some("staff".into()))
    );
    for (request, fault) in [
        ("<tan:ModifyRules><tan:ConfigurationToken>vac_door</tan:ConfigurationToken><tan:Rule Name=\"nobody\" Type=\"tt:FaceRecognition\"><tt:Parameters/></tan:Rule></tan:ModifyRules>", "ter:RuleNotExistent"),
        ("<tan:ModifyRules><tan:ConfigurationToken>vac_door</tan:ConfigurationToken><tan:Rule Name=\"Staff\" Type=\"tt:FaceRecognition\"><tt:Parameters><tt:SimpleItem Name=\"IncludeImage\" Value=\"Embedded\"/></tt:Parameters></tan:Rule></tan:ModifyRules>", "ter:InvalidRule"),
        ("<tan:ModifyRules><tan:ConfigurationToken>vac_door</tan:ConfigurationToken><tan:Rule Name=\"Staff\" Type=\"tt:FaceRecognition\"><tt:Parameters><tt:SimpleItem Name=\"Watchlist\" Value=\"ghosts\"/></tt:Parameters></tan:Rule></tan:ModifyRules>", "ter:InvalidRule"),
        ("<tan:CreateRules><tan:ConfigurationToken>vac_door</tan:ConfigurationToken><tan:Rule Name=\"line\" Type=\"tt:LineCounting\"><tt:Parameters/></tan:Rule></tan:CreateRules>", "ter:InvalidRule"),
        ("<tan:CreateRules><tan:ConfigurationToken>vac_nowhere</tan:ConfigurationToken><tan:Rule Name=\"a\" Type=\"tt:FaceRecognition\"><tt:Parameters/></tan:Rule></tan:CreateRules>", "ter:NoConfig"),
        ("<tan:DeleteRules><tan:ConfigurationToken>vac_door</tan:ConfigurationToken><tan:RuleName>nobody</tan:RuleName></tan:DeleteRules>", "ter:RuleNotExistent"),
    ] {
        let refused = call(&device, ANALYTICS, OPERATOR, request).await;
        assert_eq!(refused.status, 400, "{request}");
        assert!(text(&refused).contains(fault), "{request}: {}", text(&refused));
    }
    assert_eq!(
        rules(&device, "vac_door").await.len(),
        3,
        "a refused change changes nothing"
    );

    answer(
        &device,
        ANALYTICS,
        "<tan:DeleteRules><tan:ConfigurationToken>vac_door</tan:ConfigurationToken>\
        <tan:RuleName>x7Qz</tan:RuleName></tan:DeleteRules>",
    )
    .await;
    let kept = rules(&device, "vac_door").await;
    assert_eq!(
        kept.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(),
        ["Staff", "Banned"]
    );
    assert_eq!(device.rules_reporting("door", "staff").len(), 1);
    assert!(!device.rules_reporting("door", "staff")[0].sends_image());

    // Kept across a restart of the device.
    drop(device);
    let (restarted, _) = crate::testing::device(Some(file));
    assert_eq!(rules(&restarted, "vac_door").await, kept);
}

#[tokio::test]
async fn analytics_4_1_1_to_4_1_4_the_face_detector_module_and_its_metadata() {
    let (device, product) = device(None);
    let supported = answer(&device, ANALYTICS,
        "<tan:GetSupportedAnalyticsModules><tan:ConfigurationToken>vac_door</tan:ConfigurationToken></tan:GetSupportedAnalyticsModules>").await;
    let description = supported
        .find(&["SupportedAnalyticsModules", "AnalyticsModuleDescription"])
        .unwrap();
    let module_type = description.attribute("Name").unwrap().to_string();
    assert!(description.attribute("maxInstances").is_some());
    assert_eq!(description.attribute("fixed"), Some("true"));
    // A fixed module is in the configuration (ANALYTICS-4-1-1).
    let configuration = answer(&device, MEDIA2, "<tr2:GetAnalyticsConfigurations><tr2:ConfigurationToken>vac_door</tr2:ConfigurationToken></tr2:GetAnalyticsConfigurations>").await;
    let module = configuration
        .find(&[
            "Configurations",
            "AnalyticsEngineConfiguration",
            "AnalyticsModule",
        ])
        .unwrap();
    assert_eq!(module.attribute("Type"), Some(module_type.as_str()));

    // Options: the same with and without the type, each naming its module (4-1-2).
    let typed = answer(&device, ANALYTICS, &format!(
        "<tan:GetAnalyticsModuleOptions><tan:Type>{module_type}</tan:Type><tan:ConfigurationToken>vac_door</tan:ConfigurationToken></tan:GetAnalyticsModuleOptions>")).await;
    let untyped = answer(&device, ANALYTICS,
        "<tan:GetAnalyticsModuleOptions><tan:ConfigurationToken>vac_door</tan:ConfigurationToken></tan:GetAnalyticsModuleOptions>").await;
    assert_eq!(typed, untyped);
    let option = typed.child("Options").unwrap();
    assert_eq!(
        option.attribute("AnalyticsModule"),
        Some(module_type.as_str())
    );
    assert!(option.attribute("RuleType").is_none());
    let range = option.child("IntRange").unwrap();
    assert_eq!(
        (range.child_text("Min"), range.child_text("Max")),
        (Some("12"), Some("2000"))
    );

    // Modified with a value from its option (4-1-7), handed to the product, read back.
    answer(&device, ANALYTICS, &format!("<tan:ModifyAnalyticsModules><tan:ConfigurationToken>vac_door</tan:ConfigurationToken>\
        <tan:AnalyticsModule Name=\"FaceDetector\" Type=\"{module_type}\"><tt:Parameters><tt:SimpleItem Name=\"MinFaceSize\" Value=\"80\"/></tt:Parameters>\
        </tan:AnalyticsModule></tan:ModifyAnalyticsModules>")).await;
    assert_eq!(product.detector.lock().unwrap().unwrap().min_face, 80);
    let modules = answer(&device, ANALYTICS,
        "<tan:GetAnalyticsModules><tan:ConfigurationToken>vac_door</tan:ConfigurationToken></tan:GetAnalyticsModules>").await;
    let value = modules
        .find(&["AnalyticsModule", "Parameters", "SimpleItem"])
        .unwrap()
        .attribute("Value");
    assert_eq!(value, Some("80"));
    for (request, fault) in [
        ("<tan:ModifyAnalyticsModules><tan:ConfigurationToken>vac_door</tan:ConfigurationToken><tan:AnalyticsModule Name=\"FaceDetector\" Type=\"vigil:FaceDetector\"><tt:Parameters><tt:SimpleItem Name=\"MinFaceSize\" Value=\"5\"/></tt:Parameters></tan:AnalyticsModule></tan:ModifyAnalyticsModules>", "ter:InvalidModule"),
        ("<tan:CreateAnalyticsModules><tan:ConfigurationToken>vac_door</tan:ConfigurationToken><tan:AnalyticsModule Name=\"second\" Type=\"vigil:FaceDetector\"><tt:Parameters/></tan:AnalyticsModule></tan:CreateAnalyticsModules>", "ter:FixedModules"),
        ("<tan:DeleteAnalyticsModules><tan:ConfigurationToken>vac_door</tan:ConfigurationToken><tan:AnalyticsModuleName>FaceDetector</tan:AnalyticsModuleName></tan:DeleteAnalyticsModules>", "ter:FixedModules"),
        ("<tan:GetSupportedMetadata><tan:Type>tt:LicensePlateDetector</tan:Type></tan:GetSupportedMetadata>", "ter:TypeNotExistent"),
    ] {
        let refused = call(&device, ANALYTICS, OPERATOR, request).await;
        assert!(text(&refused).contains(fault), "{request}: {}", text(&refused));
    }
    assert_eq!(product.detector.lock().unwrap().unwrap().min_face, 80);

    // GetSupportedMetadata: one entry per module type, the same asked by type (4-1-4); a face
    // with its picture by reference (5-1-4, 5-1-7), drawn in the top-left quarter.
    let all = answer(&device, ANALYTICS, "<tan:GetSupportedMetadata/>").await;
    let by_type = answer(
        &device,
        ANALYTICS,
        &format!(
        "<tan:GetSupportedMetadata><tan:Type>{module_type}</tan:Type></tan:GetSupportedMetadata>"),
    )
    .await;
    assert_eq!(all, by_type);
    let entries: Vec<&Element> = all.children_named("AnalyticsModule").collect();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].attribute("Type"), Some(module_type.as_str()));
    let appearance = entries[0]
        .find(&["SampleFrame", "Object", "Appearance"])
        .unwrap();
    assert!(appearance.child("HumanFace").is_some());
    assert!(appearance.child("ImageRef").is_some());
    let b = appearance.find(&["Shape", "BoundingBox"]).unwrap();
    let edge = |name: &str| b.attribute(name).unwrap().parse::<f32>().unwrap();
    for x in [edge("left"), edge("right")] {
        assert!((-1.0..=0.0).contains(&x), "x {x}");
    }
    for y in [edge("top"), edge("bottom")] {
        assert!((0.0..=1.0).contains(&y), "y {y}");
    }
}

#[tokio::test]
async fn analytics_3_1_1_capabilities_agree_and_media2_offers_the_configurations() {
    let (device, _) = device(None);
    let attributes = |e: &Element| {
        let mut all: Vec<(String, String)> = e
            .attributes
            .iter()
            .map(|a| (a.name.clone(), a.value.clone()))
            .collect();
        all.sort();
        all
    };
    let own = answer(&device, ANALYTICS, "<tan:GetServiceCapabilities/>").await;
    let own = attributes(own.child("Capabilities").unwrap());
    let services = |include: bool| {
        let device = device.clone();
        async move {
            answer(&device, "/onvif/device_service", &format!(
                "<tds:GetServices><tds:IncludeCapability>{include}</tds:IncludeCapability></tds:GetServices>")).await
        }
    };
    let with = services(true).await;
    let entry = with
        .children_named("Service")
        .find(|s| s.child_text("Namespace") == Some(crate::soap::ns::TAN))
        .expect("the analytics service is listed");
    assert_eq!(
        attributes(entry.find(&["Capabilities", "Capabilities"]).unwrap()),
        own
    );
    for wanted in [
        "RuleSupport",
        "AnalyticsModuleSupport",
        "SupportedMetadata",
        "RuleOptionsSupported",
    ] {
        assert!(
            own.contains(&(wanted.to_string(), "true".to_string())),
            "{wanted}"
        );
    }
    assert!(own.contains(&("ImageSendingType".into(), "LocalStorage".into())));
    let without = services(false).await;
    let entry = without
        .children_named("Service")
        .find(|s| s.child_text("Namespace") == Some(crate::soap::ns::TAN))
        .unwrap();
    assert!(entry.child("Capabilities").is_none());

    // MEDIA2-7-1-1: Analytics and Metadata among the configurations supported.
    let media2 = answer(&device, MEDIA2, "<tr2:GetServiceCapabilities/>").await;
    let supported = media2
        .find(&["Capabilities", "ProfileCapabilities"])
        .and_then(|p| p.attribute("ConfigurationsSupported"))
        .unwrap()
        .split(' ')
        .map(str::to_string)
        .collect::<Vec<_>>();
    assert!(supported.contains(&"Analytics".into()) && supported.contains(&"Metadata".into()));
    // MEDIA2-9-1-1: each profile's own analytics configuration is among those offered for it.
    let profiles = answer(
        &device,
        MEDIA2,
        "<tr2:GetProfiles><tr2:Type>All</tr2:Type></tr2:GetProfiles>",
    )
    .await;
    // The device's own profile holds nothing; every camera profile holds its analytics.
    for profile in profiles
        .children_named("Profiles")
        .filter(|p| p.attribute("token") != Some("device"))
    {
        let own = profile
            .find(&["Configurations", "Analytics"])
            .and_then(|a| a.attribute("token"))
            .unwrap()
            .to_string();
        let offered = answer(&device, MEDIA2, &format!(
            "<tr2:GetAnalyticsConfigurations><tr2:ProfileToken>{}</tr2:ProfileToken></tr2:GetAnalyticsConfigurations>",
            profile.attribute("token").unwrap())).await;
        let tokens: Vec<&str> = offered
            .children_named("Configurations")
            .map(|c| c.attribute("token").unwrap())
            .collect();
        assert_eq!(tokens, [own.as_str()]);
    }
    let unknown = call(&device, MEDIA2, OPERATOR, "<tr2:GetAnalyticsConfigurations><tr2:ConfigurationToken>vac_x</tr2:ConfigurationToken></tr2:GetAnalyticsConfigurations>").await;
    // MEDIA2-9-1-3
    assert!(
        text(&unknown).contains("ter:NoConfig"),
        "{}",
        text(&unknown)
    );

    // The Media topics are in the topic set (Profile M).
    let properties = answer(&device, EVENTS, "<tev:GetEventProperties/>").await;
    let media = properties.find(&["TopicSet", "Media"]).expect("tns1:Media");
    assert!(media.child("ProfileChanged").is_some());
    assert!(media.child("ConfigurationChanged").is_some());
}

#[tokio::test]
async fn rule_changes_need_an_operator_and_are_audited() {
    let dir = tempfile::tempdir().unwrap();
    let (device, product) = device(Some(dir.path().join("onvif.json")));
    let change = "<tan:DeleteRules><tan:ConfigurationToken>vac_door</tan:ConfigurationToken>\
        <tan:RuleName>Banned</tan:RuleName></tan:DeleteRules>";
    answer(&device, ANALYTICS, change).await;
    let audits = product.audits.lock().unwrap().clone();
    assert_eq!(audits.len(), 1);
    assert_eq!(
        (audits[0].user.as_str(), audits[0].operation.as_str()),
        ("operator", "DeleteRules")
    );
}
