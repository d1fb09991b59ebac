//! The event service (ver10/events) and WS-BaseNotification: topic properties, pull-point
//! subscriptions and pushed subscriptions, all backed by the device's `EventBroker`.

use std::time::Duration;

use chrono::{SecondsFormat, Utc};

use super::{leaf, response, Answer, Handler, Operation};
use crate::auth::AccessClass::*;
use crate::device::ItemDescription;
use crate::events::{parse_duration, termination, Delivery, EventBroker, TopicFilter};
use crate::push;
use crate::server::{Call, SUBSCRIPTION_PATH};
use crate::soap::Fault;
use crate::xml::escape;

pub(super) const OPERATIONS: &[Operation] = &[
    Operation::now("GetServiceCapabilities", PreAuth, |call| {
        Ok(response(
            "tev",
            "GetServiceCapabilities",
            &service_capabilities(call),
        ))
    }),
    Operation::now("GetEventProperties", ReadMedia, |call| {
        Ok(event_properties(call))
    }),
    Operation::now(
        "CreatePullPointSubscription",
        ReadMedia,
        create_pull_point_subscription,
    ),
    Operation {
        name: "PullMessages",
        access: ReadMedia,
        handler: Handler::Later(|call| Box::pin(pull_messages(call))),
    },
    Operation::now("SetSynchronizationPoint", ReadMedia, |call| {
        call.device.events.synchronize(&subscription_id(call)?)?;
        Ok("<tev:SetSynchronizationPointResponse/>".into())
    }),
];

/// WS-BaseNotification's operations (its own namespace).
pub(super) const SUBSCRIPTION_OPERATIONS: &[Operation] = &[
    Operation::now("Subscribe", ReadMedia, subscribe),
    Operation::now("Renew", ReadMedia, renew),
    Operation::now("Unsubscribe", ReadMedia, |call| {
        call.device.events.unsubscribe(&subscription_id(call)?)?;
        Ok("<wsnt:UnsubscribeResponse/>".into())
    }),
];

fn time(at: chrono::DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn create_pull_point_subscription(call: &Call<'_>) -> Answer {
    let broker = &call.device.events;
    let now = Utc::now();
    let (filter, lifetime) = filter_and_lifetime(&call.request.body, broker, now)?;
    let id = broker.subscribe(
        &owner(call),
        filter,
        lifetime,
        Delivery::Pull(EventBroker::new_pull_queue()),
    )?;
    tracing::info!(subscription = %id, peer = ?call.caller.as_ref().map(|u| &u.name), "pull-point subscription created");
    Ok(format!(
        "<tev:CreatePullPointSubscriptionResponse><tev:SubscriptionReference>{}</tev:SubscriptionReference>\
         {}{}</tev:CreatePullPointSubscriptionResponse>",
        leaf("wsa:Address", subscription_address(call, &id)),
        leaf("wsnt:CurrentTime", time(now)),
        leaf("wsnt:TerminationTime", time(now + lifetime)),
    ))
}

fn subscribe(call: &Call<'_>) -> Answer {
    let operation = &call.request.body;
    let device = call.device;
    let broker = &device.events;
    let now = Utc::now();
    let consumer = operation
        .find(&["ConsumerReference", "Address"])
        .map(|a| a.text.trim().to_string())
        .ok_or_else(|| {
            Fault::sender(
                "wsnt:SubscribeCreationFailedFault",
                "no ConsumerReference Address",
            )
        })?;
    let allowed = device.consumer_allow();
    if allowed.is_empty() {
        return Err(Fault::sender(
            "wsnt:SubscribeCreationFailedFault",
            "events are pushed to no address until an administrator names the VMS's \
             (web UI settings, ONVIF event consumers); pull points work meanwhile",
        ));
    }
    let target = push::Target::parse(&consumer, &allowed)
        .map_err(|why| Fault::sender("wsnt:SubscribeCreationFailedFault", why))?;
    let (filter, lifetime) = filter_and_lifetime(operation, broker, now)?;
    let (sender, receiver) = tokio::sync::mpsc::channel(256);
    let id = broker.subscribe(&owner(call), filter, lifetime, Delivery::Push(sender))?;
    let address = subscription_address(call, &id);
    tokio::spawn(push::deliver(target, address.clone(), receiver));
    tracing::info!(subscription = %id, consumer = %consumer, "push subscription created");
    Ok(format!(
        "<wsnt:SubscribeResponse><wsnt:SubscriptionReference>{}</wsnt:SubscriptionReference>{}{}</wsnt:SubscribeResponse>",
        leaf("wsa:Address", address),
        leaf("wsnt:CurrentTime", time(now)),
        leaf("wsnt:TerminationTime", time(now + lifetime)),
    ))
}

async fn pull_messages(call: &Call<'_>) -> Answer {
    let operation = &call.request.body;
    let broker = &call.device.events;
    let id = subscription_id(call)?;
    let queue = broker.pull_queue(&id)?;
    let timeout = operation
        .child_text("Timeout")
        .map(|t| {
            parse_duration(t).ok_or_else(|| {
                Fault::invalid_arg("ter:InvalidArgVal", "Timeout is not an xs:duration")
            })
        })
        .transpose()?
        .unwrap_or(Duration::from_secs(10))
        .min(broker.limits().max_pull_timeout);
    let limit = operation
        .child_text("MessageLimit")
        .map(|l| {
            l.parse::<usize>().map_err(|_| {
                Fault::invalid_arg("ter:InvalidArgVal", "MessageLimit is not a number")
            })
        })
        .transpose()?
        .unwrap_or(100)
        .clamp(1, broker.limits().max_messages_per_pull);
    let messages = queue.pull(timeout, limit).await;
    let address = subscription_address(call, &id);
    let remaining = broker.remaining(&id).unwrap_or_default();
    let after = Utc::now();
    let notifications: String = messages
        .iter()
        .map(|m| m.notification_xml(&address))
        .collect();
    Ok(format!(
        "<tev:PullMessagesResponse>{}{}{notifications}</tev:PullMessagesResponse>",
        leaf("tev:CurrentTime", time(after)),
        leaf("tev:TerminationTime", time(after + remaining)),
    ))
}

fn renew(call: &Call<'_>) -> Answer {
    let broker = &call.device.events;
    let now = Utc::now();
    let id = subscription_id(call)?;
    let lifetime = termination(
        call.request.body.child_text("TerminationTime"),
        broker.limits(),
        now,
    )
    .map_err(|f| Fault {
        subcodes: vec!["wsnt:UnacceptableTerminationTimeFault"],
        ..f
    })?;
    broker.renew(&id, lifetime)?;
    Ok(format!(
        "<wsnt:RenewResponse>{}{}</wsnt:RenewResponse>",
        leaf("wsnt:TerminationTime", time(now + lifetime)),
        leaf("wsnt:CurrentTime", time(now)),
    ))
}

pub(super) fn service_capabilities(call: &Call<'_>) -> String {
    let limits = call.device.events.limits();
    format!(
        "<tev:Capabilities WSSubscriptionPolicySupport=\"false\" WSPullPointSupport=\"true\" \
         WSPausableSubscriptionManagerInterfaceSupport=\"false\" MaxNotificationProducers=\"{0}\" MaxPullPoints=\"{0}\" \
         PersistentNotificationStorage=\"false\"/>",
        limits.max_subscriptions
    )
}

/// The topic filter and the initial lifetime a new subscription asks for.
fn filter_and_lifetime(
    operation: &crate::xml::Element,
    broker: &EventBroker,
    now: chrono::DateTime<Utc>,
) -> Result<(TopicFilter, Duration), Fault> {
    let filter = TopicFilter::from_request(operation.child("Filter"))?;
    let lifetime = termination(
        operation.child_text("InitialTerminationTime"),
        broker.limits(),
        now,
    )?;
    Ok((filter, lifetime))
}

fn subscription_address(call: &Call<'_>, id: &str) -> String {
    format!("{}{SUBSCRIPTION_PATH}{id}", call.base)
}

/// The subscription a request is for: from the path it was posted to, or from its
/// WS-Addressing `To` header.
fn subscription_id(call: &Call<'_>) -> Result<String, Fault> {
    let from_path = call.path.strip_prefix(SUBSCRIPTION_PATH);
    let from_to = call
        .request
        .addressing("To")
        .and_then(|to| to.split_once(SUBSCRIPTION_PATH).map(|(_, id)| id));
    from_path
        .or(from_to)
        .filter(|id| !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric()))
        .map(str::to_string)
        .ok_or_else(|| {
            Fault::sender(
                "wsrf-rw:ResourceUnknownFault",
                "post this operation to a subscription address",
            )
        })
}

fn event_properties(call: &Call<'_>) -> String {
    // Topics nest as elements: tns1:RuleEngine/Recognition/Face becomes
    // <tns1:RuleEngine><Recognition><Face wstop:topic="true">...</Face></Recognition></tns1:RuleEngine>.
    let mut tree = TopicTree::default();
    for topic in call
        .device
        .product
        .topics()
        .into_iter()
        .chain(crate::server::device_topics())
    {
        let description = format!(
            "<tt:MessageDescription IsProperty=\"{}\">{}{}{}</tt:MessageDescription>",
            topic.is_property,
            items("tt:Source", &topic.source),
            if topic.key.is_empty() {
                String::new()
            } else {
                items("tt:Key", &topic.key)
            },
            data_items(&topic.data, &topic.data_elements),
        );
        tree.insert(
            topic.path.split('/').collect::<Vec<_>>().as_slice(),
            description,
        );
    }
    format!(
        "<tev:GetEventPropertiesResponse>\
         <tev:TopicNamespaceLocation>http://www.onvif.org/onvif/ver10/topics/topicns.xml</tev:TopicNamespaceLocation>\
         <wsnt:FixedTopicSet>true</wsnt:FixedTopicSet><wstop:TopicSet>{}</wstop:TopicSet>\
         <wsnt:TopicExpressionDialect>http://www.onvif.org/ver10/tev/topicExpression/ConcreteSet</wsnt:TopicExpressionDialect>\
         <wsnt:TopicExpressionDialect>http://docs.oasis-open.org/wsn/t-1/TopicExpression/Concrete</wsnt:TopicExpressionDialect>\
         <tev:MessageContentFilterDialect>http://www.onvif.org/ver10/tev/messageContentFilter/ItemFilter</tev:MessageContentFilterDialect>\
         <tev:MessageContentSchemaLocation>http://www.onvif.org/onvif/ver10/schema/onvif.xsd</tev:MessageContentSchemaLocation>\
         </tev:GetEventPropertiesResponse>",
        tree.render(true)
    )
}

fn items(tag: &str, items: &[ItemDescription]) -> String {
    format!(
        "<{tag}>{}</{tag}>",
        descriptions("tt:SimpleItemDescription", items)
    )
}

fn data_items(simple: &[ItemDescription], elements: &[ItemDescription]) -> String {
    format!(
        "<tt:Data>{}{}</tt:Data>",
        descriptions("tt:SimpleItemDescription", simple),
        descriptions("tt:ElementItemDescription", elements)
    )
}

fn descriptions(tag: &str, items: &[ItemDescription]) -> String {
    items
        .iter()
        .map(|i| {
            format!(
                "<{tag} Name=\"{}\" Type=\"{}\"/>",
                escape(&i.name),
                escape(&i.xml_type)
            )
        })
        .collect()
}

#[derive(Default)]
struct TopicTree {
    children: Vec<(String, TopicTree)>,
    description: Option<String>,
}

impl TopicTree {
    fn insert(&mut self, path: &[&str], description: String) {
        let Some((first, rest)) = path.split_first() else {
            self.description = Some(description);
            return;
        };
        let index = match self.children.iter().position(|(name, _)| name == first) {
            Some(i) => i,
            None => {
                self.children
                    .push((first.to_string(), TopicTree::default()));
                self.children.len() - 1
            }
        };
        self.children[index].1.insert(rest, description);
    }

    fn render(&self, top: bool) -> String {
        self.children
            .iter()
            .map(|(name, child)| {
                // Only the first level carries the namespace prefix: ONVIF's, or a vendor's
                // named in the path.
                let tag = if top && !name.contains(':') {
                    format!("tns1:{name}")
                } else {
                    name.clone()
                };
                let marker = if child.description.is_some() {
                    " wstop:topic=\"true\""
                } else {
                    ""
                };
                format!(
                    "<{tag}{marker}>{}{}</{tag}>",
                    child.description.clone().unwrap_or_default(),
                    child.render(false)
                )
            })
            .collect()
    }
}

/// Who a subscription counts against: the caller (every event operation needs one).
fn owner(call: &Call<'_>) -> String {
    call.caller
        .as_ref()
        .map_or_else(String::new, |u| u.name.clone())
}
