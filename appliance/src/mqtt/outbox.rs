//! Messages waiting for the broker. Bounded, and the oldest go first when it is full: the
//! cameras and the event bus never wait for an MQTT broker that is slow or away. Retained
//! state is not lost that way: it is published whole again at every (re)connection.

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
    queue: VecDeque<Message>,
    capacity: usize,
    dropped: u64,
}

impl Outbox {
    pub fn new(capacity: usize) -> Self {
        Self {
            queue: VecDeque::new(),
            capacity: capacity.max(1),
            dropped: 0,
        }
    }

    /// Queues `message`; how many were dropped to make room (0 or 1).
    pub fn push(&mut self, message: Message) -> u64 {
        let mut dropped = 0;
        while self.queue.len() >= self.capacity {
            self.queue.pop_front();
            dropped += 1;
        }
        self.queue.push_back(message);
        self.dropped += dropped;
        dropped
    }

    pub fn front(&self) -> Option<&Message> {
        self.queue.front()
    }

    pub fn pop(&mut self) -> Option<Message> {
        self.queue.pop_front()
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Messages dropped since the start.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// At a (re)connection: `first` (availability, discovery, the whole retained state) goes
    /// ahead, and queued retained messages are left out (`first` holds their latest value).
    pub fn restart_with(&mut self, first: Vec<Message>) {
        let events: Vec<Message> = self.queue.drain(..).filter(|m| !m.retain).collect();
        for m in first.into_iter().chain(events) {
            self.push(m);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_go_first_and_are_counted() {
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
    fn a_reconnection_puts_the_state_first_and_keeps_events() {
        let mut o = Outbox::new(10);
        o.push(Message::retained("s".into(), "old"));
        o.push(Message::event("e".into(), "alert"));
        o.restart_with(vec![Message::retained("s".into(), "new")]);
        let topics: Vec<_> = std::iter::from_fn(|| o.pop()).collect();
        assert_eq!(
            topics,
            vec![
                Message::retained("s".into(), "new"),
                Message::event("e".into(), "alert")
            ]
        );
    }
}
