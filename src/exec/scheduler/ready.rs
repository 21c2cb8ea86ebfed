//! The ready set: tasks that wait for nothing but a slot, the one with
//! the most work behind it first, then declaration order.
//!
//! A task may also belong to a pool ([`crate::model::Graph::pool`]: a
//! prompt task of a model with `max_concurrency`), as in ninja: at most
//! the pool's depth of its tasks run at once. A ready task whose pool is
//! full stays ready and takes no job slot; the slot goes to the best task
//! that can start. Each pool keeps its own ready tasks, so finding the
//! best startable one costs one look per pool, however many wait.
//! Which tasks a full pool holds ([`Ready::held`]) is asked a few times a
//! second, for `status`.

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap};

use crate::model::{Pool, TaskId};

/// A ready task's place: the heaviest chain of work behind it first
/// (`priority`), then declaration order.
pub(super) type Key = (Reverse<u64>, usize);

/// One pool's running count and its ready tasks.
#[derive(Debug, Default)]
struct Members {
    depth: usize,
    running: usize,
    ready: BTreeSet<(Key, TaskId)>,
}

impl Members {
    /// How many more of its tasks may start now.
    fn room(&self) -> usize {
        self.depth.saturating_sub(self.running)
    }
}

/// Ready tasks, in their pools or in none.
#[derive(Debug, Default)]
pub(super) struct Ready {
    free: BTreeSet<(Key, TaskId)>,
    pools: HashMap<usize, Members>,
}

impl Ready {
    fn members(&mut self, pool: Pool) -> &mut Members {
        let members = self.pools.entry(pool.id).or_default();
        members.depth = pool.depth;
        members
    }

    fn set(&mut self, pool: Option<Pool>) -> &mut BTreeSet<(Key, TaskId)> {
        match pool {
            Some(pool) => &mut self.members(pool).ready,
            None => &mut self.free,
        }
    }

    pub fn insert(&mut self, key: Key, t: TaskId, pool: Option<Pool>) {
        self.set(pool).insert((key, t));
    }

    pub fn remove(&mut self, key: Key, t: TaskId, pool: Option<Pool>) {
        self.set(pool).remove(&(key, t));
    }

    /// Every ready task, startable or not, with its pool: to place again.
    pub fn drain(&mut self) -> Vec<TaskId> {
        let mut all: Vec<TaskId> = std::mem::take(&mut self.free)
            .into_iter()
            .map(|(_, t)| t)
            .collect();
        for members in self.pools.values_mut() {
            all.extend(
                std::mem::take(&mut members.ready)
                    .into_iter()
                    .map(|(_, t)| t),
            );
        }
        all
    }

    /// How many ready tasks could start now, job slots aside.
    pub fn startable(&self) -> usize {
        self.free.len()
            + self
                .pools
                .values()
                .map(|m| m.ready.len().min(m.room()))
                .sum::<usize>()
    }

    /// The best `n` tasks that could start now, best first, no pool given
    /// more than its room.
    pub fn best(&self, n: usize) -> Vec<TaskId> {
        let mut all: Vec<(Key, TaskId)> = self.free.iter().take(n).copied().collect();
        for members in self.pools.values() {
            all.extend(members.ready.iter().take(members.room().min(n)).copied());
        }
        all.sort_unstable();
        all.into_iter().take(n).map(|(_, t)| t).collect()
    }

    /// The ready tasks their pool holds: past its room, they could not
    /// start even with a job slot free (the first `room` of a pool's ready
    /// tasks wait for a slot only), each with its pool. Empty without
    /// pools, at no cost.
    pub fn held(&self) -> Vec<(TaskId, Pool)> {
        let mut held = Vec::new();
        for (&id, members) in &self.pools {
            let pool = Pool {
                id,
                depth: members.depth,
            };
            held.extend(
                members
                    .ready
                    .iter()
                    .skip(members.room())
                    .map(|&(_, t)| (t, pool)),
            );
        }
        held
    }

    /// Takes the best task that can start now out of the set; the caller
    /// says [`Ready::started`] if it starts.
    pub fn pop(&mut self) -> Option<TaskId> {
        let mut best = self.free.first().map(|&e| (e, None));
        for (&id, members) in &self.pools {
            if members.room() == 0 {
                continue;
            }
            if let Some(&e) = members.ready.first() {
                if best.is_none_or(|(b, _)| e < b) {
                    best = Some((e, Some(id)));
                }
            }
        }
        let ((key, t), pool) = best?;
        match pool {
            None => self.free.remove(&(key, t)),
            Some(id) => self.pools.get_mut(&id)?.ready.remove(&(key, t)),
        };
        Some(t)
    }

    /// A task of `pool` starts: it counts against the pool until
    /// [`Ready::ended`].
    pub fn started(&mut self, pool: Option<Pool>) {
        if let Some(pool) = pool {
            self.members(pool).running += 1;
        }
    }

    /// A task of `pool` that started has ended: its place is free.
    pub fn ended(&mut self, pool: Option<Pool>) {
        if let Some(pool) = pool {
            let members = self.members(pool);
            members.running = members.running.saturating_sub(1);
        }
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.free.is_empty() && self.pools.values().all(|m| m.ready.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(p: u64, rank: usize) -> Key {
        (Reverse(p), rank)
    }

    #[test]
    fn a_full_pool_holds_its_tasks_and_the_slot_goes_to_the_next_best() {
        let pool = Some(Pool { id: 0, depth: 1 });
        let mut r = Ready::default();
        r.insert(key(9, 0), 0, pool);
        r.insert(key(8, 1), 1, pool);
        r.insert(key(1, 2), 2, None);
        assert_eq!(r.startable(), 2);
        assert_eq!(r.best(3), vec![0, 2]);
        assert_eq!(r.pop(), Some(0));
        r.started(pool);
        // The pool is full: the lighter task without one starts next.
        assert_eq!(r.startable(), 1);
        assert_eq!(r.pop(), Some(2));
        assert_eq!(r.pop(), None);
        assert!(!r.is_empty());
        assert_eq!(r.held(), vec![(1, Pool { id: 0, depth: 1 })]);
        r.ended(pool);
        assert_eq!(r.held(), vec![], "room for it now: it waits for a slot");
        assert_eq!(r.pop(), Some(1));
        r.started(pool);
        assert_eq!(r.startable(), 0);
        assert!(r.is_empty());
    }

    #[test]
    fn started_tasks_count_against_their_pool_until_they_end() {
        let pool = Some(Pool { id: 3, depth: 2 });
        let mut r = Ready::default();
        for t in 0..4 {
            r.insert(key(1, t), t, pool);
        }
        r.remove(key(1, 0), 0, pool);
        r.started(pool);
        assert_eq!(r.startable(), 1);
        assert_eq!(r.best(4), vec![1]);
        // One place left: the best of the three waits for a slot only.
        let pool = Pool { id: 3, depth: 2 };
        assert_eq!(r.held(), vec![(2, pool), (3, pool)]);
        assert_eq!(r.drain(), vec![1, 2, 3]);
        assert_eq!(r.startable(), 0);
    }
}
