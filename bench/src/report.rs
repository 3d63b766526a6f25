//! Printing: each benchmark returns a small two-column table of its parameters and figures, so the
//! output can be pasted into BENCHMARKS.md as it is.

pub struct Table {
    title: String,
    rows: Vec<(String, String)>,
}

impl Table {
    pub fn new(title: impl Into<String>) -> Table {
        Table { title: title.into(), rows: Vec::new() }
    }

    pub fn row(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.rows.push((name.into(), value.into()));
    }

    /// A Markdown table under a bold title.
    pub fn render(&self) -> String {
        let width = self.rows.iter().map(|(n, _)| n.len()).max().unwrap_or(0).max("figure".len());
        let mut out =
            format!("**{}**\n\n| {:width$} | value |\n|-{}-|-------|\n", self.title, "figure", "-".repeat(width));
        for (name, value) in &self.rows {
            out.push_str(&format!("| {name:width$} | {value} |\n"));
        }
        out
    }
}
