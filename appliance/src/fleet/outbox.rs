//! The durable outbox: messages for the fleet's stream, each in its own file in
//! `<data>/fleet/outbox/` until the stream acknowledged it.
//!
//! Why files: an alert must survive NATS being away (for hours) and the daemon being killed
//! before the stream took it. A message is written (synced, renamed into place) before the
//! publisher sends it, and removed only after the stream's acknowledgement; after a crash the
//! files left are sent again, in order, with the message id they were given when written, so
//! the stream drops any copy it already has (`subjects::DUPLICATE_WINDOW`). Only sequence
//! numbers are held in memory; a message is read back when it is sent.
//!
//! Bounded: past `max` messages the oldest are removed, counted and logged by the caller.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::FleetError;

/// One message for the stream.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// The `Nats-Msg-Id`: given once, when the message is first written.
    pub id: String,
    pub subject: String,
    pub payload: serde_json::Value,
}

pub struct Outbox {
    dir: PathBuf,
    /// Sequence numbers of the files waiting, oldest first.
    waiting: VecDeque<u64>,
    next: u64,
    max: usize,
}

/// What opening found besides the waiting messages.
#[derive(Debug, Default, PartialEq)]
pub struct Opened {
    pub waiting: usize,
    /// Files that could not be read as a message (removed).
    pub unreadable: usize,
}

impl Outbox {
    /// Opens (creating) `dir`; the messages a previous run left wait again, in order.
    pub fn open(dir: &Path, max: usize) -> Result<(Self, Opened), FleetError> {
        let error = |source| FleetError::Outbox {
            path: dir.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(error)?;
        let mut opened = Opened::default();
        let mut waiting = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(error)? {
            let path = entry.map_err(error)?.path();
            let sequence = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".json"))
                .and_then(|n| n.parse::<u64>().ok());
            match sequence {
                Some(s) if read(&path).is_ok() => waiting.push(s),
                // A write cut short (`*.tmp`) or a file that is not a message: never sendable.
                _ => {
                    opened.unreadable += 1;
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        waiting.sort_unstable();
        opened.waiting = waiting.len();
        let next = waiting.last().map_or(0, |s| s + 1);
        Ok((
            Self {
                dir: dir.to_path_buf(),
                waiting: waiting.into(),
                next,
                max,
            },
            opened,
        ))
    }

    fn path(&self, sequence: u64) -> PathBuf {
        self.dir.join(format!("{sequence:020}.json"))
    }

    /// Writes `message` durably; returns how many of the oldest were removed to make room.
    pub fn push(&mut self, message: &Message) -> Result<usize, FleetError> {
        let sequence = self.next;
        let path = self.path(sequence);
        let bytes = serde_json::to_vec(message).expect("a message serialises");
        crate::private_file::write(&path, &bytes).map_err(|source| FleetError::Outbox {
            path: path.clone(),
            source,
        })?;
        self.next += 1;
        self.waiting.push_back(sequence);
        let mut removed = 0;
        while self.waiting.len() > self.max {
            if let Some(oldest) = self.waiting.pop_front() {
                let _ = std::fs::remove_file(self.path(oldest));
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// The oldest waiting message, read back from its file; an unreadable one is removed
    /// and the next tried.
    pub fn front(&mut self) -> Option<(u64, Message)> {
        while let Some(&sequence) = self.waiting.front() {
            match read(&self.path(sequence)) {
                Ok(message) => return Some((sequence, message)),
                Err(e) => {
                    tracing::warn!(sequence, error = %e, "fleet outbox: a message could not be read back; skipped");
                    self.remove(sequence);
                }
            }
        }
        None
    }

    /// The stream acknowledged `sequence`: forget it.
    pub fn remove(&mut self, sequence: u64) {
        if self.waiting.front() == Some(&sequence) {
            self.waiting.pop_front();
        } else {
            self.waiting.retain(|s| *s != sequence);
        }
        let _ = std::fs::remove_file(self.path(sequence));
    }

    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }
}

fn read(path: &Path) -> std::io::Result<Message> {
    let bytes = std::fs::read(path)?;
    serde_json::from_slice(&bytes).map_err(std::io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(n: u32) -> Message {
        Message {
            id: format!("id-{n}"),
            subject: "vigil.s.a.alert.cam".into(),
            payload: serde_json::json!({ "n": n }),
        }
    }

    #[test]
    fn messages_survive_a_restart_in_order_until_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let (mut outbox, opened) = Outbox::open(dir.path(), 10).unwrap();
        assert_eq!(opened, Opened::default());
        for n in 0..3 {
            assert_eq!(outbox.push(&message(n)).unwrap(), 0);
        }
        let (first, m) = outbox.front().unwrap();
        assert_eq!(m, message(0));
        outbox.remove(first);
        drop(outbox);

        // A write cut short and a stray file are dropped, the rest waits in order.
        std::fs::write(dir.path().join("00000000000000000099.json.tmp"), b"{").unwrap();
        std::fs::write(dir.path().join("00000000000000000007.json"), b"not json").unwrap();
        let (mut outbox, opened) = Outbox::open(dir.path(), 10).unwrap();
        assert_eq!(
            opened,
            Opened {
                waiting: 2,
                unreadable: 2
            }
        );
        assert_eq!(outbox.front().unwrap().1, message(1));
        // New messages come after the old ones, whatever their numbers were.
        outbox.push(&message(3)).unwrap();
        let mut seen = Vec::new();
        while let Some((s, m)) = outbox.front() {
            seen.push(m.id);
            outbox.remove(s);
        }
        assert_eq!(seen, ["id-1", "id-2", "id-3"]);
        assert!(outbox.is_empty());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn past_its_bound_the_oldest_go() {
        let dir = tempfile::tempdir().unwrap();
        let (mut outbox, _) = Outbox::open(dir.path(), 2).unwrap();
        outbox.push(&message(0)).unwrap();
        outbox.push(&message(1)).unwrap();
        assert_eq!(outbox.push(&message(2)).unwrap(), 1);
        assert_eq!(outbox.len(), 2);
        assert_eq!(outbox.front().unwrap().1, message(1));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }
}
