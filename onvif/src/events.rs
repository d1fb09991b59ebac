//! The event service's state: subscriptions (pull points and pushed Base Notification),
//! topic filters, the current value of property topics, and pictures events refer to.
//!
//! A published message is rendered to XML once and shared by every subscription whose
//! filter it passes. Pull-point queues are bounded (oldest dropped); push subscriptions
//! have one delivery task each, so a slow consumer delays only itself.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, SecondsFormat, Utc};
use parking_lot::Mutex;
use tokio::sync::{mpsc, Notify};
// Tokio's clock, so that expiry follows a paused test clock too.
use tokio::time::Instant;

use crate::content_filter::ContentFilter;
use crate::device::{EventMessage, PropertyOperation};

/// The message content filter dialect the device reads.
pub const ITEM_FILTER: &str = "http://www.onvif.org/ver10/tev/messageContentFilter/ItemFilter";
use crate::soap::Fault;
use crate::xml::{escape, Element};

#[derive(Debug, Clone)]
pub struct EventLimits {
    pub max_subscriptions: usize,
    /// Subscriptions of one user: a user cannot take every subscription, nor make the device
    /// post to many consumers of its choosing (each push subscription is a target).
    pub max_subscriptions_per_user: usize,
    pub max_queued_per_subscription: usize,
    pub max_pull_timeout: Duration,
    pub max_messages_per_pull: usize,
    pub default_termination: Duration,
    pub max_termination: Duration,
    pub images_kept: usize,
}

impl Default for EventLimits {
    fn default() -> Self {
        Self {
            max_subscriptions: 256,
            max_subscriptions_per_user: 32,
            max_queued_per_subscription: 1000,
            max_pull_timeout: Duration::from_secs(60),
            max_messages_per_pull: 1000,
            default_termination: Duration::from_secs(60),
            max_termination: Duration::from_secs(24 * 3600),
            images_kept: 256,
        }
    }
}

/// Which addresses Subscribe may make the device call: IP networks, no host names
/// (a name could be re-pointed anywhere after it was checked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerAllowList(Vec<(IpAddr, u8)>);

impl ConsumerAllowList {
    /// The entries as `address/prefix`.
    pub fn entries(&self) -> Vec<String> {
        self.0
            .iter()
            .map(|(ip, prefix)| format!("{ip}/{prefix}"))
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Parses entries like `127.0.0.0/8`, `10.1.2.3`, `::1`.
    pub fn parse(entries: &[String]) -> Result<Self, String> {
        entries
            .iter()
            .map(|entry| {
                let (address, prefix) = match entry.split_once('/') {
                    Some((a, p)) => (a, Some(p)),
                    None => (entry.as_str(), None),
                };
                let address: IpAddr = address
                    .parse()
                    .map_err(|_| format!("{entry}: not an IP address"))?;
                let max = if address.is_ipv4() { 32 } else { 128 };
                let prefix = match prefix {
                    Some(p) => p
                        .parse::<u8>()
                        .ok()
                        .filter(|p| *p <= max)
                        .ok_or(format!("{entry}: bad prefix"))?,
                    None => max,
                };
                Ok((address, prefix))
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    pub fn allows(&self, candidate: IpAddr) -> bool {
        self.0
            .iter()
            .any(|(network, prefix)| match (network, candidate) {
                (IpAddr::V4(n), IpAddr::V4(c)) => {
                    let mask = u32::MAX.checked_shl(32 - u32::from(*prefix)).unwrap_or(0);
                    u32::from(*n) & mask == u32::from(c) & mask
                }
                (IpAddr::V6(n), IpAddr::V6(c)) => {
                    let mask = u128::MAX.checked_shl(128 - u32::from(*prefix)).unwrap_or(0);
                    u128::from(*n) & mask == u128::from(c) & mask
                }
                _ => false,
            })
    }
}

/// A subscription's filter: a topic expression (alternatives separated by `|`, each a path
/// whose segments may be `*`, optionally ending in `//.` for "this topic and everything
/// below"; namespace prefixes are ignored, every topic this device publishes is in the ONVIF
/// namespace), and optionally a message content filter on the message's items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicFilter {
    topics: Option<Vec<TopicPattern>>,
    content: Option<ContentFilter>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct TopicPattern {
    segments: Vec<String>,
    descendants: bool,
}

impl TopicFilter {
    pub fn all() -> Self {
        Self {
            topics: None,
            content: None,
        }
    }

    pub fn parse(expression: &str) -> Result<Self, Fault> {
        let invalid = || {
            Fault::sender(
                "wsnt:InvalidTopicExpressionFault",
                format!("cannot use topic expression {expression:?}"),
            )
        };
        let mut patterns = Vec::new();
        for alternative in expression.split('|') {
            let mut text = alternative.trim();
            let descendants = text.ends_with("//.");
            if descendants {
                text = &text[..text.len() - 3];
            }
            let segments: Vec<String> = text
                .split('/')
                .map(|s| strip_prefix(s).to_string())
                .collect();
            if segments
                .iter()
                .any(|s| s.is_empty() || s.contains(['.', ' ']))
            {
                return Err(invalid());
            }
            patterns.push(TopicPattern {
                segments,
                descendants,
            });
        }
        Ok(Self {
            topics: Some(patterns),
            content: None,
        })
    }

    /// Reads `<Filter>` of CreatePullPointSubscription or Subscribe.
    pub fn from_request(filter: Option<&Element>) -> Result<Self, Fault> {
        let Some(filter) = filter else {
            return Ok(Self::all());
        };
        let mut parsed = match filter.child_text("TopicExpression") {
            Some(expression) if !expression.is_empty() => Self::parse(expression)?,
            _ => Self::all(),
        };
        if let Some(content) = filter.child("MessageContent") {
            if content.attribute("Dialect") != Some(ITEM_FILTER) {
                return Err(Fault::sender(
                    "wsnt:InvalidMessageContentExpressionFault",
                    format!("message content filters are in the dialect {ITEM_FILTER}"),
                ));
            }
            parsed.content = Some(ContentFilter::parse(content.text.trim()).map_err(|e| {
                Fault::sender("wsnt:InvalidMessageContentExpressionFault", e.to_string())
            })?);
        }
        Ok(parsed)
    }

    /// Whether a message of `topic` (as rendered) passes both parts of the filter.
    pub fn accepts(&self, topic: &str, message: &EventMessage) -> bool {
        self.matches(topic) && self.content.as_ref().is_none_or(|c| c.accepts(message))
    }

    /// Whether the topic expression lets `topic` through.
    pub fn matches(&self, topic: &str) -> bool {
        let Some(patterns) = &self.topics else {
            return true;
        };
        let topic: Vec<&str> = topic.split('/').map(strip_prefix).collect();
        patterns.iter().any(|pattern| {
            let fits = |n: usize| {
                pattern
                    .segments
                    .iter()
                    .zip(&topic)
                    .take(n)
                    .all(|(p, t)| p == "*" || p == t)
            };
            if pattern.descendants {
                topic.len() >= pattern.segments.len() && fits(pattern.segments.len())
            } else {
                topic.len() == pattern.segments.len() && fits(topic.len())
            }
        })
    }
}

fn strip_prefix(segment: &str) -> &str {
    segment.rsplit_once(':').map_or(segment, |(_, local)| local)
}

/// A message rendered once, shared by all its deliveries.
#[derive(Debug)]
pub struct Rendered {
    pub topic: String,
    /// The `<tt:Message>` element.
    pub message_xml: String,
}

impl Rendered {
    /// One `<wsnt:NotificationMessage>` as delivered to a subscription.
    pub fn notification_xml(&self, subscription_address: &str) -> String {
        format!(
            "<wsnt:NotificationMessage><wsnt:SubscriptionReference><wsa:Address>{}</wsa:Address></wsnt:SubscriptionReference>\
             <wsnt:Topic Dialect=\"http://www.onvif.org/ver10/tev/topicExpression/ConcreteSet\">{}</wsnt:Topic>\
             <wsnt:Message>{}</wsnt:Message></wsnt:NotificationMessage>",
            escape(subscription_address),
            escape(&self.topic),
            self.message_xml
        )
    }
}

pub(crate) fn render(
    message: &EventMessage,
    property: Option<PropertyOperation>,
    image_uri: Option<&str>,
) -> Rendered {
    let items = |items: &[(String, String)], extra: Option<(&str, &str)>| -> String {
        items
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .chain(extra)
            .map(|(name, value)| {
                format!(
                    "<tt:SimpleItem Name=\"{}\" Value=\"{}\"/>",
                    escape(name),
                    escape(value)
                )
            })
            .collect()
    };
    let mut xml = format!("<tt:Message UtcTime=\"{}\"", xml_time(message.time));
    if let Some(operation) = property {
        xml.push_str(&format!(" PropertyOperation=\"{}\"", operation.as_str()));
    }
    xml.push('>');
    xml.push_str(&format!(
        "<tt:Source>{}</tt:Source>",
        items(&message.source, None)
    ));
    if !message.key.is_empty() {
        xml.push_str(&format!("<tt:Key>{}</tt:Key>", items(&message.key, None)));
    }
    let elements: String = message
        .data_elements
        .iter()
        .map(|(name, value)| {
            format!(
                "<tt:ElementItem Name=\"{}\">{}</tt:ElementItem>",
                escape(name),
                value.to_xml()
            )
        })
        .collect();
    xml.push_str(&format!(
        "<tt:Data>{}{elements}</tt:Data></tt:Message>",
        items(&message.data, image_uri.map(|uri| ("ImageUri", uri)))
    ));
    Rendered {
        topic: message.topic.clone(),
        message_xml: xml,
    }
}

pub fn xml_time(time: SystemTime) -> String {
    DateTime::<Utc>::from(time).to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Where a subscription's messages go.
pub enum Delivery {
    Pull(Arc<PullQueue>),
    Push(mpsc::Sender<Arc<Rendered>>),
}

pub struct PullQueue {
    messages: Mutex<VecDeque<Arc<Rendered>>>,
    arrived: Notify,
    dropped: Mutex<u64>,
}

impl PullQueue {
    fn new() -> Self {
        Self {
            messages: Mutex::new(VecDeque::new()),
            arrived: Notify::new(),
            dropped: Mutex::new(0),
        }
    }

    fn push(&self, message: Arc<Rendered>, cap: usize) {
        let mut messages = self.messages.lock();
        if messages.len() >= cap {
            messages.pop_front();
            *self.dropped.lock() += 1;
        }
        messages.push_back(message);
        drop(messages);
        self.arrived.notify_one();
    }

    /// Waits up to `timeout` for at least one message, then takes up to `limit`.
    pub async fn pull(&self, timeout: Duration, limit: usize) -> Vec<Arc<Rendered>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            {
                let mut messages = self.messages.lock();
                if !messages.is_empty() {
                    let n = limit.min(messages.len());
                    return messages.drain(..n).collect();
                }
            }
            if tokio::time::timeout_at(deadline, self.arrived.notified())
                .await
                .is_err()
            {
                return Vec::new();
            }
        }
    }
}

struct Subscription {
    /// The user who made it.
    owner: String,
    filter: TopicFilter,
    expires: Instant,
    delivery: Delivery,
}

#[derive(Default)]
struct State {
    subscriptions: HashMap<String, Subscription>,
    /// Current value of each property instance: (topic, source) -> message.
    properties: BTreeMap<(String, String), EventMessage>,
    images: VecDeque<(String, Arc<Vec<u8>>)>,
}

pub struct EventBroker {
    limits: EventLimits,
    state: Mutex<State>,
    /// Every published message, for the metadata streams (pictures as `ImageUri` items).
    stream: tokio::sync::broadcast::Sender<Arc<EventMessage>>,
    /// Base of the URIs of served pictures, e.g. `http://127.0.0.1:8080`.
    image_base: Mutex<String>,
}

impl EventBroker {
    pub fn new(limits: EventLimits) -> Self {
        Self {
            limits,
            state: Mutex::new(State::default()),
            stream: tokio::sync::broadcast::channel(256).0,
            image_base: Mutex::new(String::new()),
        }
    }

    /// Every message published from now on; a reader that falls behind loses the oldest.
    pub fn stream_events(&self) -> tokio::sync::broadcast::Receiver<Arc<EventMessage>> {
        self.stream.subscribe()
    }

    pub fn limits(&self) -> &EventLimits {
        &self.limits
    }

    /// Base of the URIs of served pictures.
    pub fn image_base(&self) -> String {
        self.image_base.lock().clone()
    }

    pub fn set_image_base(&self, base: &str) {
        *self.image_base.lock() = base.trim_end_matches('/').to_string();
    }

    pub fn image(&self, id: &str) -> Option<Arc<Vec<u8>>> {
        let state = self.state.lock();
        state
            .images
            .iter()
            .find(|(i, _)| i == id)
            .map(|(_, bytes)| bytes.clone())
    }

    /// Publishes a message to every subscription whose filter it passes. Property
    /// messages also update the value a new subscriber is told first.
    pub fn publish(&self, mut message: EventMessage) {
        let mut state = self.state.lock();
        let image_uri = message.image_jpeg.take().map(|jpeg| {
            let id = uuid::Uuid::new_v4().simple().to_string();
            if state.images.len() >= self.limits.images_kept {
                state.images.pop_front();
            }
            state.images.push_back((id.clone(), Arc::new(jpeg)));
            format!("{}/onvif/images/{id}.jpg", self.image_base.lock())
        });
        if message.property.is_some() {
            let key = (message.topic.clone(), source_key(&message));
            if message.property == Some(PropertyOperation::Deleted) {
                state.properties.remove(&key);
            } else {
                state.properties.insert(key, message.clone());
            }
        }
        let rendered = Arc::new(render(&message, message.property, image_uri.as_deref()));
        if self.stream.receiver_count() > 0 {
            let mut streamed = message.clone();
            if let Some(uri) = &image_uri {
                streamed.data.push(("ImageUri".into(), uri.clone()));
            }
            // No reader playing is no error.
            let _ = self.stream.send(Arc::new(streamed));
        }
        let now = Instant::now();
        state.subscriptions.retain(|_, s| s.expires > now);
        for subscription in state.subscriptions.values() {
            if subscription.filter.accepts(&rendered.topic, &message) {
                deliver(
                    subscription,
                    rendered.clone(),
                    self.limits.max_queued_per_subscription,
                );
            }
        }
    }

    /// Creates a subscription of user `owner` and queues the current value of every property
    /// it covers.
    pub fn subscribe(
        &self,
        owner: &str,
        filter: TopicFilter,
        lifetime: Duration,
        delivery: Delivery,
    ) -> Result<String, Fault> {
        let mut state = self.state.lock();
        let now = Instant::now();
        state.subscriptions.retain(|_, s| s.expires > now);
        if state.subscriptions.len() >= self.limits.max_subscriptions {
            return Err(Fault::receiver(
                "ter:MaxNumberOfSubscriptions",
                format!("at most {} subscriptions", self.limits.max_subscriptions),
            ));
        }
        let owned = state
            .subscriptions
            .values()
            .filter(|s| s.owner == owner)
            .count();
        if owned >= self.limits.max_subscriptions_per_user {
            return Err(Fault::receiver(
                "ter:MaxNumberOfSubscriptions",
                format!(
                    "at most {} subscriptions per user",
                    self.limits.max_subscriptions_per_user
                ),
            ));
        }
        let id = uuid::Uuid::new_v4().simple().to_string();
        let subscription = Subscription {
            owner: owner.to_string(),
            filter,
            expires: now + lifetime,
            delivery,
        };
        for message in state.properties.values() {
            if subscription.filter.accepts(&message.topic, message) {
                let rendered =
                    Arc::new(render(message, Some(PropertyOperation::Initialized), None));
                deliver(
                    &subscription,
                    rendered,
                    self.limits.max_queued_per_subscription,
                );
            }
        }
        state.subscriptions.insert(id.clone(), subscription);
        Ok(id)
    }

    pub fn renew(&self, id: &str, lifetime: Duration) -> Result<(), Fault> {
        let mut state = self.state.lock();
        let subscription = live(&mut state, id)?;
        subscription.expires = Instant::now() + lifetime;
        Ok(())
    }

    pub fn unsubscribe(&self, id: &str) -> Result<(), Fault> {
        let mut state = self.state.lock();
        live(&mut state, id)?;
        state.subscriptions.remove(id);
        Ok(())
    }

    /// Time left before a subscription expires.
    pub fn remaining(&self, id: &str) -> Result<Duration, Fault> {
        let mut state = self.state.lock();
        let subscription = live(&mut state, id)?;
        Ok(subscription
            .expires
            .saturating_duration_since(Instant::now()))
    }

    pub fn pull_queue(&self, id: &str) -> Result<Arc<PullQueue>, Fault> {
        let mut state = self.state.lock();
        match &live(&mut state, id)?.delivery {
            Delivery::Pull(queue) => Ok(queue.clone()),
            Delivery::Push(_) => Err(Fault::sender(
                "ter:InvalidArgVal",
                "this subscription pushes its messages",
            )),
        }
    }

    pub fn new_pull_queue() -> Arc<PullQueue> {
        Arc::new(PullQueue::new())
    }

    /// SetSynchronizationPoint: the current value of every covered property, again.
    pub fn synchronize(&self, id: &str) -> Result<(), Fault> {
        let mut state = self.state.lock();
        live(&mut state, id)?;
        let state = &*state;
        let subscription = &state.subscriptions[id];
        for message in state.properties.values() {
            if subscription.filter.accepts(&message.topic, message) {
                let rendered =
                    Arc::new(render(message, Some(PropertyOperation::Initialized), None));
                deliver(
                    subscription,
                    rendered,
                    self.limits.max_queued_per_subscription,
                );
            }
        }
        Ok(())
    }

    /// Media2's SetSynchronizationPoint: the current value of every property again, as
    /// `Initialized`, to the metadata streams (each takes those its configuration asks for).
    pub fn synchronize_streams(&self) {
        let state = self.state.lock();
        for message in state.properties.values() {
            let initialized = EventMessage {
                property: Some(PropertyOperation::Initialized),
                ..message.clone()
            };
            // No stream playing is no error.
            let _ = self.stream.send(Arc::new(initialized));
        }
    }

    /// Drops expired subscriptions (ending their push tasks); returns how many are left.
    /// Called periodically, so an idle device does not keep dead subscriptions.
    pub fn sweep(&self) -> usize {
        let mut state = self.state.lock();
        let now = Instant::now();
        state.subscriptions.retain(|_, s| s.expires > now);
        state.subscriptions.len()
    }
}

fn live<'a>(state: &'a mut State, id: &str) -> Result<&'a mut Subscription, Fault> {
    let now = Instant::now();
    match state.subscriptions.get(id) {
        Some(s) if s.expires > now => {}
        Some(_) => {
            state.subscriptions.remove(id);
            return Err(unknown_subscription());
        }
        None => return Err(unknown_subscription()),
    }
    state
        .subscriptions
        .get_mut(id)
        .ok_or_else(unknown_subscription)
}

fn unknown_subscription() -> Fault {
    Fault::sender(
        "wsrf-rw:ResourceUnknownFault",
        "no such subscription (it may have expired)",
    )
}

fn deliver(subscription: &Subscription, message: Arc<Rendered>, cap: usize) {
    match &subscription.delivery {
        Delivery::Pull(queue) => queue.push(message, cap),
        Delivery::Push(sender) => {
            if sender.try_send(message).is_err() {
                tracing::warn!("a push subscriber is behind; an event was not sent to it");
            }
        }
    }
}

fn source_key(message: &EventMessage) -> String {
    message
        .source
        .iter()
        .map(|(n, v)| format!("{n}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Reads a termination time: an xs:duration like `PT60S` (relative) or an absolute
/// xs:dateTime. Absent means the default; the result is capped.
pub fn termination(
    text: Option<&str>,
    limits: &EventLimits,
    now: DateTime<Utc>,
) -> Result<Duration, Fault> {
    let invalid = |why: &str| {
        Fault::sender(
            "wsnt:UnacceptableInitialTerminationTimeFault",
            why.to_string(),
        )
    };
    let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(limits.default_termination);
    };
    let duration = if text.starts_with('P') || text.starts_with("-P") {
        parse_duration(text).ok_or_else(|| invalid("not an xs:duration"))?
    } else {
        let at = DateTime::parse_from_rfc3339(text)
            .map_err(|_| invalid("neither an xs:duration nor an xs:dateTime"))?
            .with_timezone(&Utc);
        (at - now)
            .to_std()
            .map_err(|_| invalid("the termination time is in the past"))?
    };
    if duration.is_zero() {
        return Err(invalid("the termination time is now"));
    }
    Ok(duration.min(limits.max_termination))
}

/// xs:duration with days, hours, minutes and (fractional) seconds; years and months
/// have no fixed length and are refused.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let rest = text.strip_prefix('P')?;
    let (days, time) = match rest.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (rest, None),
    };
    let mut seconds = 0f64;
    if !days.is_empty() {
        seconds += days.strip_suffix('D')?.parse::<f64>().ok()? * 86_400.0;
    }
    if let Some(mut time) = time {
        if time.is_empty() {
            return None;
        }
        for (unit, factor) in [('H', 3600.0), ('M', 60.0), ('S', 1.0)] {
            if let Some((number, after)) = time.split_once(unit) {
                seconds += number.parse::<f64>().ok()? * factor;
                time = after;
            }
        }
        if !time.is_empty() {
            return None;
        }
    }
    (0.0..1e9)
        .contains(&seconds)
        .then(|| Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(topic: &str, property: Option<PropertyOperation>, source: &str) -> EventMessage {
        EventMessage {
            topic: topic.into(),
            time: SystemTime::UNIX_EPOCH,
            property,
            source: vec![("Source".into(), source.into())],
            key: Vec::new(),
            data: vec![("State".into(), "true".into())],
            data_elements: Vec::new(),
            image_jpeg: None,
        }
    }

    #[test]
    fn topic_filters() {
        let filter =
            TopicFilter::parse("tns1:RuleEngine/Recognition/Face|tns1:VideoSource//.").unwrap();
        assert!(filter.matches("tns1:RuleEngine/Recognition/Face"));
        assert!(filter.matches("tns1:VideoSource/Connection"));
        assert!(filter.matches("tns1:VideoSource"));
        assert!(!filter.matches("tns1:RuleEngine/Recognition"));
        assert!(!filter.matches("tns1:RuleEngine/MyRuleDetector/FaceDetect"));
        let wildcard = TopicFilter::parse("tns1:RuleEngine/*/FaceDetect").unwrap();
        assert!(wildcard.matches("tns1:RuleEngine/MyRuleDetector/FaceDetect"));
        assert!(TopicFilter::parse("a//b").is_err());
        assert!(TopicFilter::all().matches("anything"));
    }

    #[test]
    fn durations_and_termination() {
        assert_eq!(parse_duration("PT60S"), Some(Duration::from_secs(60)));
        assert_eq!(
            parse_duration("PT1H2M3.5S"),
            Some(Duration::from_secs_f64(3723.5))
        );
        assert_eq!(parse_duration("P1DT1S"), Some(Duration::from_secs(86_401)));
        assert_eq!(parse_duration("P1Y"), None);
        assert_eq!(parse_duration("PT"), None);
        let limits = EventLimits::default();
        let now: DateTime<Utc> = "2026-11-28T12:00:00Z".parse().unwrap();
        assert_eq!(
            termination(Some("2026-11-28T12:01:00Z"), &limits, now).unwrap(),
            Duration::from_secs(60)
        );
        assert!(termination(Some("2026-11-28T11:00:00Z"), &limits, now).is_err());
        assert_eq!(
            termination(Some("P30D"), &limits, now).unwrap(),
            limits.max_termination
        );
    }

    #[test]
    fn allow_list() {
        let list =
            ConsumerAllowList::parse(&["127.0.0.0/8".into(), "10.1.2.3".into(), "::1".into()])
                .unwrap();
        assert!(list.allows("127.8.0.1".parse().unwrap()));
        assert!(list.allows("10.1.2.3".parse().unwrap()));
        assert!(!list.allows("10.1.2.4".parse().unwrap()));
        assert!(list.allows("::1".parse().unwrap()));
        assert!(!list.allows("8.8.8.8".parse().unwrap()));
        assert!(ConsumerAllowList::parse(&["example.com".into()]).is_err());
        assert!(ConsumerAllowList::parse(&["0.0.0.0/0".into()])
            .unwrap()
            .allows("8.8.8.8".parse().unwrap()));
    }

    #[tokio::test]
    async fn pull_points_get_filtered_messages_and_property_state() {
        let broker = EventBroker::new(EventLimits::default());
        broker.publish(message(
            "tns1:RuleEngine/MyRuleDetector/FaceDetect",
            Some(PropertyOperation::Changed),
            "cam1",
        ));
        let queue = EventBroker::new_pull_queue();
        let id = broker
            .subscribe(
                "vms",
                TopicFilter::all(),
                Duration::from_secs(60),
                Delivery::Pull(queue.clone()),
            )
            .unwrap();
        let initial = queue.pull(Duration::from_millis(1), 10).await;
        assert_eq!(initial.len(), 1);
        assert!(initial[0]
            .message_xml
            .contains("PropertyOperation=\"Initialized\""));

        let faces = EventBroker::new_pull_queue();
        broker
            .subscribe(
                "vms",
                TopicFilter::parse("tns1:RuleEngine/Recognition/Face").unwrap(),
                Duration::from_secs(60),
                Delivery::Pull(faces.clone()),
            )
            .unwrap();
        let waiting = tokio::spawn({
            let faces = faces.clone();
            async move { faces.pull(Duration::from_secs(30), 10).await }
        });
        broker.publish(message("tns1:RuleEngine/Recognition/Face", None, "cam1"));
        let got = waiting.await.unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].topic, "tns1:RuleEngine/Recognition/Face");
        assert_eq!(queue.pull(Duration::from_millis(1), 10).await.len(), 1);

        broker.synchronize(&id).unwrap();
        assert_eq!(queue.pull(Duration::from_millis(1), 10).await.len(), 1);
        broker.unsubscribe(&id).unwrap();
        assert!(broker.renew(&id, Duration::from_secs(1)).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn expired_subscriptions_are_swept() {
        let broker = EventBroker::new(EventLimits::default());
        let (sender, mut receiver) = mpsc::channel(1);
        broker
            .subscribe(
                "vms",
                TopicFilter::all(),
                Duration::from_secs(5),
                Delivery::Push(sender),
            )
            .unwrap();
        assert_eq!(broker.sweep(), 1);
        tokio::time::advance(Duration::from_secs(6)).await;
        assert_eq!(broker.sweep(), 0);
        // The push task's channel closes with its subscription.
        assert!(receiver.recv().await.is_none());
    }

    #[test]
    fn subscription_count_is_capped() {
        let broker = EventBroker::new(EventLimits {
            max_subscriptions: 2,
            ..EventLimits::default()
        });
        for _ in 0..2 {
            broker
                .subscribe(
                    "vms",
                    TopicFilter::all(),
                    Duration::from_secs(60),
                    Delivery::Pull(EventBroker::new_pull_queue()),
                )
                .unwrap();
        }
        let refused = broker.subscribe(
            "vms",
            TopicFilter::all(),
            Duration::from_secs(60),
            Delivery::Pull(EventBroker::new_pull_queue()),
        );
        assert!(refused.is_err());
    }

    #[test]
    fn one_user_cannot_take_every_subscription() {
        let broker = EventBroker::new(EventLimits {
            max_subscriptions_per_user: 2,
            ..EventLimits::default()
        });
        let subscribe = |owner: &str| {
            broker.subscribe(
                owner,
                TopicFilter::all(),
                Duration::from_secs(60),
                Delivery::Pull(EventBroker::new_pull_queue()),
            )
        };
        assert!(subscribe("eve").is_ok() && subscribe("eve").is_ok());
        assert!(subscribe("eve").is_err());
        assert!(subscribe("vms").is_ok());
    }
}
