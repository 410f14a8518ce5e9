//! What the operations keep in the journal: the first result of each
//! idempotency key, and async jobs' records.

use std::future::Future;

use redb::ReadableDatabase;

use super::cmd::Cmd;
use super::records::{self, parse_id};
use super::{Journal, JournalError, Ticket, reads};

impl Journal {
    /// Keeps the first result of an idempotent operation for
    /// `(connection, operation, key)`; resolves once it is durable.
    pub fn remember(
        &self,
        connection: &str,
        operation: &str,
        key: &str,
        result: Vec<u8>,
    ) -> impl Future<Output = Result<(), JournalError>> + Send + 'static {
        let key = (connection.to_owned(), operation.to_owned(), key.to_owned());
        self.request(|reply| Cmd::Remember { key, result, reply })
            .wait()
    }

    /// The result remembered for `(connection, operation, key)`: when it was
    /// remembered and its JSON. A short read; call it off the async threads.
    pub fn recall(
        &self,
        connection: &str,
        operation: &str,
        key: &str,
    ) -> Result<Option<(std::time::SystemTime, Vec<u8>)>, JournalError> {
        let txn = self.inner.db.begin_read().map_err(JournalError::storage)?;
        let found = reads::recall(&txn, (connection, operation, key))?;
        Ok(found.map(|(ms, bytes)| (records::from_millis(ms), bytes)))
    }

    /// Writes an async operation's job record (JSON); resolves once it is durable.
    /// Settled jobs are compacted after the idempotency TTL.
    pub fn put_job(
        &self,
        id: &str,
        settled: bool,
        record: Vec<u8>,
    ) -> impl Future<Output = Result<(), JournalError>> + Send + 'static {
        let ticket = match parse_id(id) {
            Ok(id) => self.request(|reply| Cmd::PutJob {
                id,
                settled,
                record,
                reply,
            }),
            Err(e) => Ticket::Ready(Err(e)),
        };
        ticket.wait()
    }

    /// One job's record (JSON), if it is kept. A short read; call it off the async threads.
    pub fn job(&self, id: &str) -> Result<Option<Vec<u8>>, JournalError> {
        let id = parse_id(id)?;
        let txn = self.inner.db.begin_read().map_err(JournalError::storage)?;
        reads::job(&txn, id)
    }

    /// Every job record kept (JSON), oldest first.
    pub fn jobs(&self) -> Result<Vec<Vec<u8>>, JournalError> {
        let txn = self.inner.db.begin_read().map_err(JournalError::storage)?;
        reads::jobs(&txn)
    }
}
