//! Messages waiting for the broker. The cameras and the event bus never wait for an MQTT
//! broker that is slow or away, so what waits here is bounded:
//!
//! - retained state is kept as its latest value per topic (a face sensor that went ON and OFF
//!   while the broker was slow is sent once, as OFF): at most one message per retained topic,
//!   a few per camera, and they go first;
//! - alerts (not retained) wait in order up to `mqtt.queue`; past it the oldest go first,
//!   counted (and logged by the publisher).

use std::collections::VecDeque;

/// One MQTT publish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
}

impl Message {
    pub fn retained(topic: String, payload: impl Into<Vec<u8>>) -> Self {
        Self {
            topic,
            payload: payload.into(),
            retain: true,
        }
    }

    pub fn event(topic: String, payload: impl Into<Vec<u8>>) -> Self {
        Self {
            topic,
            payload: payload.into(),
            retain: false,
        }
    }

    /// The empty retained message that deletes a retained topic (and a discovered entity).
    pub fn clear(topic: String) -> Self {
        Self::retained(topic, Vec::new())
    }
}

pub struct Outbox {
    /// Retained messages, one per topic, in the order their topics were first queued.
    state: VecDeque<Message>,
    events: VecDeque<Message>,
    capacity: usize,
    dropped: u64,
}

impl Outbox {
    /// `capacity`: alerts waiting at most.
    pub fn new(capacity: usize) -> Self {
        Self {
            state: VecDeque::new(),
            events: VecDeque::new(),
            capacity: capacity.max(1),
            dropped: 0,
        }
    }

    /// Queues `message`; how many alerts were dropped to make room (0 or 1).
    pub fn push(&mut self, message: Message) -> u64 {
        if message.retain {
            match self.state.iter_mut().find(|m| m.topic == message.topic) {
                Some(queued) => *queued = message,
                None => self.state.push_back(message),
            }
            return 0;
        }
        let mut dropped = 0;
        while self.events.len() >= self.capacity {
            self.events.pop_front();
            dropped += 1;
        }
        self.events.push_back(message);
        self.dropped += dropped;
        dropped
    }

    /// The next message to send: retained state first.
    pub fn front(&self) -> Option<&Message> {
        self.state.front().or_else(|| self.events.front())
    }

    pub fn pop(&mut self) -> Option<Message> {
        self.state.pop_front().or_else(|| self.events.pop_front())
    }

    pub fn len(&self) -> usize {
        self.state.len() + self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.state.is_empty() && self.events.is_empty()
    }

    /// Alerts dropped since the start.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// At a (re)connection: `state` (availability, discovery, the whole retained state) goes
    /// first, then queued retained messages of other topics (a removed camera's clearing),
    /// then the queued alerts.
    pub fn restart_with(&mut self, state: Vec<Message>) {
        let queued = std::mem::take(&mut self.state);
        for m in state {
            self.push(m);
        }
        for m in queued {
            if !self.state.iter().any(|s| s.topic == m.topic) {
                self.state.push_back(m);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(o: &mut Outbox) -> Vec<Message> {
        std::iter::from_fn(|| o.pop()).collect()
    }

    #[test]
    fn the_oldest_alerts_go_first_and_are_counted() {
        let mut o = Outbox::new(2);
        assert_eq!(o.push(Message::event("a".into(), "1")), 0);
        o.push(Message::event("a".into(), "2"));
        assert_eq!(o.push(Message::event("a".into(), "3")), 1);
        assert_eq!(o.dropped(), 1);
        assert_eq!(o.pop().unwrap().payload, b"2");
        assert_eq!(o.pop().unwrap().payload, b"3");
        assert!(o.is_empty());
    }

    #[test]
    fn retained_state_is_its_latest_value_and_goes_first() {
        let mut o = Outbox::new(1);
        o.push(Message::event("e".into(), "alert"));
        o.push(Message::retained("face".into(), "ON"));
        o.push(Message::retained("person".into(), "a"));
        o.push(Message::retained("face".into(), "OFF"));
        assert_eq!(o.len(), 3);
        assert_eq!(o.dropped(), 0, "state never pushes an alert out");
        assert_eq!(
            drain(&mut o),
            vec![
                Message::retained("face".into(), "OFF"),
                Message::retained("person".into(), "a"),
                Message::event("e".into(), "alert"),
            ]
        );
    }

    #[test]
    fn a_reconnection_puts_the_state_first_and_keeps_the_rest() {
        let mut o = Outbox::new(10);
        o.push(Message::retained("s".into(), "old"));
        o.push(Message::clear("gone".into()));
        o.push(Message::event("e".into(), "alert"));
        o.restart_with(vec![
            Message::retained("availability".into(), "online"),
            Message::retained("s".into(), "new"),
        ]);
        assert_eq!(
            drain(&mut o),
            vec![
                Message::retained("availability".into(), "online"),
                Message::retained("s".into(), "new"),
                Message::clear("gone".into()),
                Message::event("e".into(), "alert")
            ]
        );
    }
}
