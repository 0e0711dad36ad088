//! A child process that cannot outlive the code that started it: the guard
//! kills and reaps it when dropped, so a failing test or an interrupted
//! bench leaves no process behind. Shared by the tests (`common::ChildGuard`)
//! and the benchmark, which includes this file with `#[path]`.

use std::io;
use std::ops::{Deref, DerefMut};
use std::process::{Child, Command};

/// A running child, killed (`SIGKILL`) and waited for on drop. Derefs to
/// the [`Child`] for its pid, pipes and `try_wait`.
pub struct ChildGuard(Child);

impl ChildGuard {
    /// Spawns `command` with a guard owning the child from the start, so no
    /// early return or panic can leak it.
    pub fn spawn(command: &mut Command) -> io::Result<ChildGuard> {
        command.spawn().map(ChildGuard)
    }

    /// Kills the child now, as `kill -9` would, and reaps it. Killing one
    /// that has already exited does nothing.
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Deref for ChildGuard {
    type Target = Child;

    fn deref(&self) -> &Child {
        &self.0
    }
}

impl DerefMut for ChildGuard {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}
