//! The process's soft open-file limit, read from `/proc/self/limits` (std
//! cannot call getrlimit). Shared by the tests and the benchmark, which
//! includes this file with `#[path]`.

/// The soft limit on open files, or 1024 (the usual default) if it cannot
/// be read.
pub fn soft_open_file_limit() -> usize {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| {
            let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
            line.split_whitespace().nth(3)?.parse::<usize>().ok()
        })
        .unwrap_or(1024)
}
