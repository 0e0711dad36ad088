//! What the bench measures and how it is shown: a [`Figure`] is one number
//! measured once per repetition, a [`Latency`] is the p50 and p99 of the
//! same repetitions, and the [`Table`] holds named rows, each optionally
//! against a baseline from the same run and a [`Goal`], and prints them as
//! median [min … max], ratio and a met/MISSED verdict.

use std::time::Duration;

use crate::REPS;

/// One quantity measured in each of several repetitions, with its unit.
#[derive(Clone)]
pub struct Figure {
    unit: &'static str,
    values: Vec<f64>,
}

impl Figure {
    /// Measures `measure` [`REPS`] times.
    pub fn of(unit: &'static str, mut measure: impl FnMut() -> f64) -> Figure {
        Figure::new(unit, (0..REPS).map(|_| measure()).collect())
    }

    /// A figure read once (a process's memory, say): no range is shown.
    pub fn one(unit: &'static str, value: f64) -> Figure {
        Figure::new(unit, vec![value])
    }

    pub fn new(unit: &'static str, values: Vec<f64>) -> Figure {
        assert!(!values.is_empty(), "a figure needs a value");
        Figure { unit, values }
    }

    /// Each repetition's value, in the order measured.
    pub fn values(&self) -> &[f64] {
        &self.values
    }

    fn sorted(&self) -> Vec<f64> {
        let mut v = self.values.clone();
        v.sort_by(f64::total_cmp);
        v
    }

    pub fn median(&self) -> f64 {
        let v = self.sorted();
        v[v.len() / 2]
    }

    fn min(&self) -> f64 {
        self.sorted()[0]
    }

    fn max(&self) -> f64 {
        *self.sorted().last().unwrap()
    }
}

/// The p50 and p99 (in µs) of each repetition's samples: both figures come
/// from the same runs, so a row pair never mixes two measurements.
pub struct Latency {
    pub p50: Figure,
    pub p99: Figure,
}

impl Latency {
    /// Collects one repetition's samples [`REPS`] times.
    pub fn of(mut run: impl FnMut() -> Vec<Duration>) -> Latency {
        let reps: Vec<(f64, f64)> = (0..REPS).map(|_| percentiles(run())).collect();
        Latency::from_percentiles(&reps)
    }

    /// From each repetition's (p50, p99), as [`percentiles`] gives them.
    pub fn from_percentiles(reps: &[(f64, f64)]) -> Latency {
        Latency {
            p50: Figure::new("µs", reps.iter().map(|r| r.0).collect()),
            p99: Figure::new("µs", reps.iter().map(|r| r.1).collect()),
        }
    }
}

pub fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// p50 and p99 of `samples`, in µs.
pub fn percentiles(mut samples: Vec<Duration>) -> (f64, f64) {
    assert!(!samples.is_empty(), "percentiles of no samples");
    samples.sort();
    let at = |q: f64| micros(samples[((samples.len() - 1) as f64 * q) as usize]);
    (at(0.50), at(0.99))
}

/// What a row must show to meet its target.
#[derive(Clone, Copy)]
pub enum Goal {
    /// The ratio to the baseline must be at most this (or, for a row of
    /// ratios with no baseline, its median).
    AtMost(f64),
    /// The ratio to the baseline must be at least this (or, for a row of
    /// ratios, its median).
    AtLeast(f64),
    /// The value itself must be below this.
    Below(f64),
}

struct Row {
    name: String,
    /// What was measured; `None` for a row that says why nothing was.
    figure: Option<Figure>,
    note: Option<String>,
    /// The baseline's name and median.
    baseline: Option<(String, f64)>,
    goal: Option<Goal>,
}

/// Every row so far; each is also printed as it is added, so a long run
/// shows progress.
#[derive(Default)]
pub struct Table {
    rows: Vec<Row>,
}

impl Table {
    /// Starts a row called `name`; it needs a [`NamedRow::value`].
    pub fn row(&mut self, name: &str) -> NamedRow<'_> {
        NamedRow {
            table: self,
            name: name.to_string(),
        }
    }

    /// Starts the pair of rows "`name`, p50" and "`name`, p99".
    pub fn latency<'t>(&'t mut self, name: &str, latency: &Latency) -> LatencyRows<'t> {
        let row = |which: &str, figure: &Figure| Row {
            name: format!("{name}, {which}"),
            figure: Some(figure.clone()),
            note: None,
            baseline: None,
            goal: None,
        };
        LatencyRows(Pending {
            rows: vec![row("p50", &latency.p50), row("p99", &latency.p99)],
            table: self,
        })
    }

    /// A row that says, instead of a figure, why it was not measured.
    pub fn skipped(&mut self, name: &str, why: &str) {
        let row = Row {
            name: name.to_string(),
            figure: None,
            note: Some(format!("skipped: {why}")),
            baseline: None,
            goal: None,
        };
        println!("  {}", format_row(&row));
        self.rows.push(row);
    }

    pub fn print(&self) {
        println!();
        println!(
            "{:<44} {:>12} {:>24}  {:<28} {:>7}  target",
            "measurement", "median", "[min … max]", "baseline", "ratio"
        );
        println!("{}", "-".repeat(140));
        for row in &self.rows {
            println!("{}", format_row(row));
        }
        let missed: Vec<&Row> = self
            .rows
            .iter()
            .filter(|r| verdict(r).is_some_and(|(met, _)| !met))
            .collect();
        println!();
        if missed.is_empty() {
            println!("every target met");
        } else {
            for row in missed {
                println!("target missed: {}", row.name);
            }
        }
    }
}

/// A row with a name and nothing to show yet.
#[must_use = "a row needs a value"]
pub struct NamedRow<'t> {
    table: &'t mut Table,
    name: String,
}

impl<'t> NamedRow<'t> {
    pub fn value(self, figure: &Figure) -> RowBuilder<'t> {
        RowBuilder(Pending {
            rows: vec![Row {
                name: self.name,
                figure: Some(figure.clone()),
                note: None,
                baseline: None,
                goal: None,
            }],
            table: self.table,
        })
    }
}

/// Rows on their way into a table: they join it, and are printed, when the
/// builder is dropped, at the end of the statement that built them.
struct Pending<'t> {
    table: &'t mut Table,
    rows: Vec<Row>,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        for row in self.rows.drain(..) {
            println!("  {}", format_row(&row));
            self.table.rows.push(row);
        }
    }
}

/// One row: a figure, perhaps against a baseline, perhaps with a goal.
pub struct RowBuilder<'t>(Pending<'t>);

impl RowBuilder<'_> {
    /// Shows the ratio to `baseline`'s median, labelled `name`.
    pub fn vs(mut self, name: &str, baseline: &Figure) -> Self {
        self.0.rows[0].baseline = Some((name.to_string(), baseline.median()));
        self
    }

    pub fn goal(mut self, goal: Goal) -> Self {
        self.0.rows[0].goal = Some(goal);
        self
    }
}

/// A p50 row and a p99 row from the same runs.
pub struct LatencyRows<'t>(Pending<'t>);

impl LatencyRows<'_> {
    /// Sets each row against the same percentile of `baseline`, labelled
    /// "`name` p50" and "`name` p99".
    pub fn vs(mut self, name: &str, baseline: &Latency) -> Self {
        let [p50, p99] = &mut self.0.rows[..] else {
            unreachable!("a latency is two rows")
        };
        p50.baseline = Some((format!("{name} p50"), baseline.p50.median()));
        p99.baseline = Some((format!("{name} p99"), baseline.p99.median()));
        self
    }

    /// A target for the median sample (the p50 row).
    pub fn p50_goal(mut self, goal: Goal) -> Self {
        self.0.rows[0].goal = Some(goal);
        self
    }
}

fn format_row(row: &Row) -> String {
    let Some(f) = &row.figure else {
        return format!("{:<44} {}", row.name, row.note.as_deref().unwrap_or(""));
    };
    let range = if f.values.len() > 1 {
        format!("[{} … {}]", num(f.min()), num(f.max()))
    } else {
        String::new()
    };
    let (base, ratio) = match &row.baseline {
        Some((name, value)) => (
            format!("{name} {}", num(*value)),
            format!("{:.2}×", f.median() / value),
        ),
        None => (String::new(), String::new()),
    };
    let target = match verdict(row) {
        Some((met, text)) => format!("{text} {}", if met { "met" } else { "MISSED" }),
        None => String::new(),
    };
    format!(
        "{:<44} {:>12} {:>24}  {:<28} {:>7}  {}",
        row.name,
        format!("{} {}", num(f.median()), f.unit),
        range,
        base,
        ratio,
        target
    )
}

/// Whether the row meets its goal, and the goal as text; `None` without a
/// goal.
fn verdict(row: &Row) -> Option<(bool, String)> {
    let figure = row.figure.as_ref()?;
    let value = figure.median();
    match (row.goal?, &row.baseline) {
        (Goal::AtMost(limit), Some((_, base))) => {
            Some((value / base <= limit, format!("≤ {limit}×")))
        }
        (Goal::AtLeast(limit), Some((_, base))) => {
            Some((value / base >= limit, format!("≥ {limit}×")))
        }
        (Goal::AtMost(limit), None) => Some((value <= limit, format!("≤ {limit}×"))),
        (Goal::AtLeast(limit), None) => Some((value >= limit, format!("≥ {limit}×"))),
        (Goal::Below(limit), _) => {
            Some((value < limit, format!("< {} {}", num(limit), figure.unit)))
        }
    }
}

fn num(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}
