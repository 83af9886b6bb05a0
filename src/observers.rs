//! Request-scoped observers: how an outer layer hears what an inner layer reports.
//!
//! An outer layer (cost, metrics, audit) pushes an observer into the request's
//! extensions; the inner layer that makes the report (usage, cost) calls its own hook,
//! then every observer on the request. The inner layer never knows who listens.

use std::sync::Arc;

/// The observers of one kind of report (`dyn OnUsage`, `dyn OnCost`) on one request.
pub struct Observers<H: ?Sized>(Vec<Arc<H>>);

impl<H: ?Sized + Send + Sync + 'static> Observers<H> {
    /// Add `observer` to the request's `extensions`, creating the list if needed.
    pub fn push(extensions: &mut http::Extensions, observer: Arc<H>) {
        match extensions.get_mut::<Self>() {
            Some(list) => list.0.push(observer),
            None => {
                extensions.insert(Self(vec![observer]));
            }
        }
    }

    /// The observers, in the order they were added.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<H>> {
        self.0.iter()
    }
}

impl<H: ?Sized> Clone for Observers<H> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<H: ?Sized> Default for Observers<H> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<H: ?Sized> std::fmt::Debug for Observers<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Observers({})", self.0.len())
    }
}
