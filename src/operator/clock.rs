//! The clock. Production reads the system time; tests set it.

use std::sync::Arc;

use crate::jiff::Timestamp;

/// The clock. Production reads the system time; tests set it.
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

pub fn system_clock() -> Clock {
    Arc::new(Timestamp::now)
}
