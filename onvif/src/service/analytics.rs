//! The Analytics service (ver20/analytics): each source's analytics configuration with its
//! face-recognition rules and its face detector module (see `crate::analytics` for the model).

use super::{required_texts, response, Answer, Operation};
use crate::analytics::{
    self, DetectorSettings, RecognitionRule, CONFIGURATION_PREFIX, DEFAULT_IMAGE_SENDING,
    IMAGE_SENDING, MAX_RULES, MAX_RULE_NAME, MODULE_NAME, MODULE_TYPE, RULE_TYPE,
};
use crate::auth::AccessClass::*;
use crate::device::VideoSource;
use crate::server::Call;
use crate::soap::Fault;
use crate::xml::{escape, Element};

pub(super) const OPERATIONS: &[Operation] = &[
    Operation::now("GetServiceCapabilities", PreAuth, |call| {
        Ok(response(
            "tan",
            "GetServiceCapabilities",
            &service_capabilities(call),
        ))
    }),
    Operation::now("GetSupportedRules", ReadMedia, get_supported_rules),
    Operation::now("GetRules", ReadMedia, get_rules),
    Operation::now("GetRuleOptions", ReadMedia, get_rule_options),
    Operation::now("CreateRules", Actuate, create_rules),
    Operation::now("ModifyRules", Actuate, modify_rules),
    Operation::now("DeleteRules", Actuate, delete_rules),
    Operation::now(
        "GetSupportedAnalyticsModules",
        ReadMedia,
        get_supported_analytics_modules,
    ),
    Operation::now("GetAnalyticsModules", ReadMedia, get_analytics_modules),
    Operation::now(
        "GetAnalyticsModuleOptions",
        ReadMedia,
        get_analytics_module_options,
    ),
    Operation::now("CreateAnalyticsModules", Actuate, create_analytics_modules),
    Operation::now("ModifyAnalyticsModules", Actuate, modify_analytics_modules),
    Operation::now("DeleteAnalyticsModules", Actuate, delete_analytics_modules),
    Operation::now("GetSupportedMetadata", ReadMedia, get_supported_metadata),
];

pub(super) fn service_capabilities(_call: &Call<'_>) -> String {
    "<tan:Capabilities RuleSupport=\"true\" AnalyticsModuleSupport=\"true\" \
     CellBasedSceneDescriptionSupported=\"false\" RuleOptionsSupported=\"true\" \
     AnalyticsModuleOptionsSupported=\"true\" SupportedMetadata=\"true\" ImageSendingType=\"LocalStorage\"/>"
        .into()
}

/// The rule parameters: whether events carry the face's picture, and the list reported.
const INCLUDE_IMAGE: &str = "IncludeImage";
const WATCHLIST: &str = "Watchlist";
/// The detector module's parameter.
const MIN_FACE_SIZE: &str = "MinFaceSize";

/// The source whose analytics configuration the request names (`ConfigurationToken`).
fn configuration(call: &Call<'_>) -> Result<(VideoSource, String), Fault> {
    let token = call
        .request
        .body
        .child_text("ConfigurationToken")
        .ok_or_else(|| Fault::invalid_arg("ter:NoConfig", "no ConfigurationToken given"))?;
    let source = token
        .strip_prefix(CONFIGURATION_PREFIX)
        .and_then(|source| {
            call.device
                .product
                .video_sources()
                .into_iter()
                .find(|s| s.token == source)
        })
        .ok_or_else(|| {
            Fault::invalid_arg(
                "ter:NoConfig",
                format!("no analytics configuration {token}"),
            )
        })?;
    Ok((source, token.to_string()))
}

/// The recognition events' description, as GetSupportedRules and GetEventProperties give it.
fn recognition_messages() -> String {
    "<tt:Messages IsProperty=\"false\">\
     <tt:Source><tt:SimpleItemDescription Name=\"VideoSource\" Type=\"tt:ReferenceToken\"/>\
     <tt:SimpleItemDescription Name=\"Rule\" Type=\"xs:string\"/></tt:Source>\
     <tt:Data><tt:SimpleItemDescription Name=\"Likelihood\" Type=\"xs:float\"/>\
     <tt:SimpleItemDescription Name=\"Label\" Type=\"xs:string\"/>\
     <tt:SimpleItemDescription Name=\"EnrollmentID\" Type=\"xs:string\"/>\
     <tt:SimpleItemDescription Name=\"ImageUri\" Type=\"xs:anyURI\"/>\
     <tt:SimpleItemDescription Name=\"RefImageUri\" Type=\"xs:anyURI\"/>\
     <tt:ElementItemDescription Name=\"ObjectId\" Type=\"tt:ObjectId\"/>\
     <tt:ElementItemDescription Name=\"BoundingBox\" Type=\"tt:Rectangle\"/></tt:Data>\
     <tt:ParentTopic>tns1:RuleEngine/Recognition/Face</tt:ParentTopic></tt:Messages>"
        .into()
}

fn get_supported_rules(call: &Call<'_>) -> Answer {
    configuration(call)?;
    Ok(response(
        "tan",
        "GetSupportedRules",
        &format!(
            "<tan:SupportedRules><tt:RuleDescription Name=\"{RULE_TYPE}\" maxInstances=\"{MAX_RULES}\">\
             <tt:Parameters><tt:SimpleItemDescription Name=\"{INCLUDE_IMAGE}\" Type=\"xs:string\"/>\
             <tt:SimpleItemDescription Name=\"{WATCHLIST}\" Type=\"tt:ReferenceToken\"/></tt:Parameters>\
             {}</tt:RuleDescription></tan:SupportedRules>",
            recognition_messages()
        ),
    ))
}

/// `tt:VideoAnalyticsConfiguration` of a source: its module and its rules, as GetRules and
/// GetAnalyticsModules show them.
pub(super) fn analytics_configuration(tag: &str, call: &Call<'_>, source: &VideoSource) -> String {
    let token = analytics::configuration_token(source);
    let rules: String = call
        .device
        .recognition_rules(&token)
        .iter()
        .map(|r| rule_xml("tt:Rule", r))
        .collect();
    format!(
        "<{tag} token=\"{}\"><tt:Name>{} analytics</tt:Name><tt:UseCount>2</tt:UseCount>\
         <tt:AnalyticsEngineConfiguration>{}</tt:AnalyticsEngineConfiguration>\
         <tt:RuleEngineConfiguration>{rules}</tt:RuleEngineConfiguration></{tag}>",
        escape(&token),
        escape(&source.name),
        module_xml("tt:AnalyticsModule", &call.device.product.detector()),
    )
}

fn rule_xml(tag: &str, rule: &RecognitionRule) -> String {
    let list = rule
        .list
        .as_ref()
        .map(|l| simple_item(WATCHLIST, l))
        .unwrap_or_default();
    format!(
        "<{tag} Name=\"{}\" Type=\"{RULE_TYPE}\"><tt:Parameters>{}{list}</tt:Parameters></{tag}>",
        escape(&rule.name),
        simple_item(INCLUDE_IMAGE, &rule.include_image),
    )
}

fn simple_item(name: &str, value: impl std::fmt::Display) -> String {
    format!(
        "<tt:SimpleItem Name=\"{name}\" Value=\"{}\"/>",
        escape(&value.to_string())
    )
}

fn get_rules(call: &Call<'_>) -> Answer {
    let (_, token) = configuration(call)?;
    let rules: String = call
        .device
        .recognition_rules(&token)
        .iter()
        .map(|r| rule_xml("tan:Rule", r))
        .collect();
    Ok(response("tan", "GetRules", &rules))
}

/// One option per rule type (the test tool asks for exactly one): `IncludeImage`'s values.
/// The watchlist a rule reports takes any list token and has no option.
fn get_rule_options(call: &Call<'_>) -> Answer {
    configuration(call)?;
    if let Some(wanted) = call.request.body.child_text("RuleType") {
        if local_name(wanted) != local_name(RULE_TYPE) {
            return Err(Fault::invalid_arg(
                "ter:RuleNotExistent",
                format!("no rule type {wanted} here; {RULE_TYPE} is"),
            ));
        }
    }
    let values: String = IMAGE_SENDING
        .iter()
        .map(|v| format!("<tt:Item>{v}</tt:Item>"))
        .collect();
    Ok(response(
        "tan",
        "GetRuleOptions",
        &format!(
            "<tan:RuleOptions RuleType=\"{RULE_TYPE}\" Name=\"{INCLUDE_IMAGE}\" minOccurs=\"0\" maxOccurs=\"1\">\
             <tt:StringItems>{values}</tt:StringItems></tan:RuleOptions>"
        ),
    ))
}

fn local_name(qname: &str) -> &str {
    qname.rsplit(':').next().unwrap_or(qname)
}

/// The rules a request carries (`Rule` elements), checked.
fn requested_rules(call: &Call<'_>) -> Result<Vec<RecognitionRule>, Fault> {
    let lists = call.device.product.recognition_lists();
    let rules: Vec<RecognitionRule> = call
        .request
        .body
        .children_named("Rule")
        .map(|rule| parse_rule(rule, &lists))
        .collect::<Result<_, _>>()?;
    if rules.is_empty() {
        return Err(Fault::invalid_arg("ter:InvalidRule", "no Rule given"));
    }
    for (i, rule) in rules.iter().enumerate() {
        if rules[..i].iter().any(|r| r.name == rule.name) {
            return Err(Fault::invalid_arg(
                "ter:InvalidRule",
                format!("rule {} is given twice", rule.name),
            ));
        }
    }
    Ok(rules)
}

fn parse_rule(
    rule: &Element,
    lists: &[analytics::RecognitionList],
) -> Result<RecognitionRule, Fault> {
    let name = rule
        .attribute("Name")
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| Fault::invalid_arg("ter:InvalidRule", "a Rule has no Name"))?;
    if name.chars().count() > MAX_RULE_NAME || name.chars().any(char::is_control) {
        return Err(Fault::invalid_arg(
            "ter:InvalidRule",
            format!("a rule name has at most {MAX_RULE_NAME} printable characters"),
        ));
    }
    let kind = rule.attribute("Type").unwrap_or_default();
    if local_name(kind) != local_name(RULE_TYPE) {
        return Err(Fault::invalid_arg(
            "ter:InvalidRule",
            format!("rule type {kind:?} is not supported; {RULE_TYPE} is"),
        ));
    }
    let parsed = RecognitionRule {
        name: name.to_string(),
        include_image: DEFAULT_IMAGE_SENDING.into(),
        list: None,
    };
    apply_parameters(parsed, rule, lists)
}

/// `rule` with the parameters `request` sets.
fn apply_parameters(
    mut rule: RecognitionRule,
    request: &Element,
    lists: &[analytics::RecognitionList],
) -> Result<RecognitionRule, Fault> {
    for item in request
        .child("Parameters")
        .into_iter()
        .flat_map(|p| p.children_named("SimpleItem"))
    {
        let value = item.attribute("Value").unwrap_or_default().trim();
        match item.attribute("Name").unwrap_or_default() {
            INCLUDE_IMAGE => {
                if !value.is_empty() && !IMAGE_SENDING.contains(&value) {
                    return Err(Fault::invalid_arg(
                        "ter:InvalidRule",
                        format!(
                            "{INCLUDE_IMAGE} is empty (no picture) or one of {IMAGE_SENDING:?}, not {value:?}"
                        ),
                    ));
                }
                rule.include_image = value.to_string();
            }
            WATCHLIST if value.is_empty() => rule.list = None,
            WATCHLIST => {
                if !lists.iter().any(|l| l.token == value) {
                    return Err(Fault::invalid_arg(
                        "ter:InvalidRule",
                        format!("no watchlist {value:?}"),
                    ));
                }
                rule.list = Some(value.to_string());
            }
            other => {
                return Err(Fault::invalid_arg(
                    "ter:InvalidRule",
                    format!("a {RULE_TYPE} rule has no parameter {other:?}"),
                ))
            }
        }
    }
    Ok(rule)
}

/// Applies `change` to a configuration's rules and keeps them.
fn change_rules(
    call: &Call<'_>,
    token: &str,
    change: impl FnOnce(&mut Vec<RecognitionRule>) -> Result<(), Fault>,
) -> Result<(), Fault> {
    let mut rules = call.device.recognition_rules(token);
    change(&mut rules)?;
    call.device.change_settings(|settings| {
        settings.recognition_rules.insert(token.to_string(), rules);
        Ok(())
    })?;
    call.device.configuration_changed(token, "Analytics");
    Ok(())
}

fn create_rules(call: &Call<'_>) -> Answer {
    let (_, token) = configuration(call)?;
    let new = requested_rules(call)?;
    change_rules(call, &token, |rules| {
        if let Some(clash) = new.iter().find(|n| rules.iter().any(|r| r.name == n.name)) {
            return Err(Fault::invalid_arg(
                "ter:RuleAlreadyExistent",
                format!("rule {} exists", clash.name),
            ));
        }
        if rules.len() + new.len() > MAX_RULES {
            return Err(Fault {
                subcodes: vec!["ter:Action", "ter:TooManyRules"],
                ..Fault::receiver("", format!("at most {MAX_RULES} rules a configuration"))
            });
        }
        rules.extend(new);
        Ok(())
    })?;
    Ok("<tan:CreateRulesResponse/>".into())
}

/// Changes the parameters a request names; the others stay as they were.
fn modify_rules(call: &Call<'_>) -> Answer {
    let (_, token) = configuration(call)?;
    let lists = call.device.product.recognition_lists();
    requested_rules(call)?;
    let requests: Vec<&Element> = call.request.body.children_named("Rule").collect();
    change_rules(call, &token, |rules| {
        for request in requests {
            let name = request.attribute("Name").unwrap_or_default().trim();
            let slot = rules.iter_mut().find(|r| r.name == name).ok_or_else(|| {
                Fault::invalid_arg("ter:RuleNotExistent", format!("no rule {name}"))
            })?;
            *slot = apply_parameters(slot.clone(), request, &lists)?;
        }
        Ok(())
    })?;
    Ok("<tan:ModifyRulesResponse/>".into())
}

fn delete_rules(call: &Call<'_>) -> Answer {
    let (_, token) = configuration(call)?;
    let names = required_texts(&call.request.body, "RuleName", "ter:RuleNotExistent")?;
    change_rules(call, &token, |rules| {
        if let Some(missing) = names.iter().find(|n| !rules.iter().any(|r| &r.name == *n)) {
            return Err(Fault::invalid_arg(
                "ter:RuleNotExistent",
                format!("no rule {missing}"),
            ));
        }
        rules.retain(|r| !names.contains(&r.name));
        Ok(())
    })?;
    Ok("<tan:DeleteRulesResponse/>".into())
}

fn get_supported_analytics_modules(call: &Call<'_>) -> Answer {
    configuration(call)?;
    Ok(response(
        "tan",
        "GetSupportedAnalyticsModules",
        &format!(
            "<tan:SupportedAnalyticsModules><tt:AnalyticsModuleDescription Name=\"{MODULE_TYPE}\" fixed=\"true\" maxInstances=\"1\">\
             <tt:Parameters><tt:SimpleItemDescription Name=\"{MIN_FACE_SIZE}\" Type=\"xs:int\"/></tt:Parameters>\
             </tt:AnalyticsModuleDescription></tan:SupportedAnalyticsModules>"
        ),
    ))
}

fn module_xml(tag: &str, settings: &DetectorSettings) -> String {
    format!(
        "<{tag} Name=\"{MODULE_NAME}\" Type=\"{MODULE_TYPE}\"><tt:Parameters>{}</tt:Parameters></{tag}>",
        simple_item(MIN_FACE_SIZE, settings.min_face)
    )
}

fn get_analytics_modules(call: &Call<'_>) -> Answer {
    configuration(call)?;
    Ok(response(
        "tan",
        "GetAnalyticsModules",
        &module_xml("tan:AnalyticsModule", &call.device.product.detector()),
    ))
}

fn get_analytics_module_options(call: &Call<'_>) -> Answer {
    configuration(call)?;
    if let Some(wanted) = call.request.body.child_text("Type") {
        if local_name(wanted) != local_name(MODULE_TYPE) {
            return Err(Fault::invalid_arg(
                "ter:TypeNotExistent",
                format!("no module type {wanted} here; {MODULE_TYPE} is"),
            ));
        }
    }
    let (min, max) = call.device.product.detector().min_face_range;
    Ok(response(
        "tan",
        "GetAnalyticsModuleOptions",
        &format!(
            "<tan:Options AnalyticsModule=\"{MODULE_TYPE}\" Name=\"{MIN_FACE_SIZE}\" minOccurs=\"0\" maxOccurs=\"1\">\
             <tt:IntRange><tt:Min>{min}</tt:Min><tt:Max>{max}</tt:Max></tt:IntRange></tan:Options>"
        ),
    ))
}

/// The detector is one fixed module per configuration: none is added.
fn create_analytics_modules(call: &Call<'_>) -> Answer {
    configuration(call)?;
    Err(Fault {
        subcodes: vec!["ter:Action", "ter:FixedModules"],
        ..Fault::sender(
            "",
            format!("each configuration has one {MODULE_TYPE}, fixed; modify it instead"),
        )
    })
}

fn delete_analytics_modules(call: &Call<'_>) -> Answer {
    configuration(call)?;
    let names: Vec<&str> = call
        .request
        .body
        .children_named("AnalyticsModuleName")
        .map(|n| n.text.trim())
        .collect();
    if let Some(unknown) = names.iter().find(|n| **n != MODULE_NAME) {
        return Err(Fault::invalid_arg(
            "ter:NameNotExistent",
            format!("no analytics module {unknown}"),
        ));
    }
    Err(Fault {
        subcodes: vec!["ter:Action", "ter:FixedModules"],
        ..Fault::sender(
            "",
            format!("{MODULE_NAME} is fixed: faces are what this device analyses"),
        )
    })
}

fn modify_analytics_modules(call: &Call<'_>) -> Answer {
    let (_, token) = configuration(call)?;
    let product = &call.device.product;
    let mut settings = product.detector();
    let modules: Vec<&Element> = call
        .request
        .body
        .children_named("AnalyticsModule")
        .collect();
    if modules.is_empty() {
        return Err(Fault::invalid_arg(
            "ter:InvalidModule",
            "no AnalyticsModule given",
        ));
    }
    for module in modules {
        let name = module.attribute("Name").unwrap_or_default();
        if name != MODULE_NAME {
            return Err(Fault::invalid_arg(
                "ter:NameNotExistent",
                format!("no analytics module {name:?}"),
            ));
        }
        for item in module
            .child("Parameters")
            .into_iter()
            .flat_map(|p| p.children_named("SimpleItem"))
        {
            let value = item.attribute("Value").unwrap_or_default().trim();
            match item.attribute("Name").unwrap_or_default() {
                MIN_FACE_SIZE => {
                    let (min, max) = settings.min_face_range;
                    settings.min_face = value
                        .parse::<u32>()
                        .ok()
                        .filter(|v| (min..=max).contains(v))
                        .ok_or_else(|| {
                            Fault::invalid_arg(
                                "ter:InvalidModule",
                                format!("{MIN_FACE_SIZE} is a whole number of pixels from {min} to {max}"),
                            )
                        })?;
                }
                other => {
                    return Err(Fault::invalid_arg(
                        "ter:InvalidModule",
                        format!("{MODULE_TYPE} has no parameter {other:?}"),
                    ))
                }
            }
        }
    }
    let at_restart = product.set_detector(settings).map_err(|why| Fault {
        subcodes: vec!["ter:Action", "ter:ConfigurationConflict"],
        ..Fault::receiver("", why)
    })?;
    if at_restart {
        tracing::info!(
            min_face = settings.min_face,
            "ONVIF client changed the detector: effective at the next start"
        );
    }
    call.device.configuration_changed(&token, "Analytics");
    Ok("<tan:ModifyAnalyticsModulesResponse/>".into())
}

/// A sample of the metadata the detector writes: one face, recognised.
fn get_supported_metadata(call: &Call<'_>) -> Answer {
    if let Some(wanted) = call.request.body.child_text("Type") {
        if local_name(wanted) != local_name(MODULE_TYPE) {
            return Err(Fault::invalid_arg(
                "ter:TypeNotExistent",
                format!("no module type {wanted} here; {MODULE_TYPE} is"),
            ));
        }
    }
    let sample = crate::streaming::sample_frame().frame_xml("tan:SampleFrame");
    Ok(response(
        "tan",
        "GetSupportedMetadata",
        &format!("<tan:AnalyticsModule Type=\"{MODULE_TYPE}\">{sample}</tan:AnalyticsModule>"),
    ))
}
