//! What a run found: sections of `docs/RELIABILITY.md`, headline figures, failures.

use serde_json::{json, Value};

#[derive(Debug, Default)]
pub struct Report {
    /// (title, markdown body), in order.
    pub sections: Vec<(String, String)>,
    /// (name, value) for the summary table.
    pub figures: Vec<(String, String)>,
    /// What makes the run fail.
    pub failures: Vec<String>,
    /// Observations that do not fail the run.
    pub notes: Vec<String>,
}

impl Report {
    pub fn section(&mut self, title: &str, body: String) {
        self.sections.push((title.to_string(), body));
    }

    pub fn figure(&mut self, name: &str, value: String) {
        self.figures.push((name.to_string(), value));
    }

    pub fn fail(&mut self, why: String) {
        eprintln!("abuse: FAIL: {why}");
        self.failures.push(why);
    }

    pub fn note(&mut self, what: String) {
        eprintln!("abuse: note: {what}");
        self.notes.push(what);
    }

    pub fn merge(&mut self, other: Report) {
        self.sections.extend(other.sections);
        self.figures.extend(other.figures);
        self.failures.extend(other.failures);
        self.notes.extend(other.notes);
    }

    pub fn to_json(&self) -> Value {
        let pairs = |v: &[(String, String)]| -> Value {
            Value::Array(v.iter().map(|(a, b)| json!([a, b])).collect())
        };
        json!({
            "sections": pairs(&self.sections),
            "figures": pairs(&self.figures),
            "failures": self.failures,
            "notes": self.notes,
        })
    }

    pub fn from_json(v: &Value) -> Report {
        let pairs = |key: &str| -> Vec<(String, String)> {
            v[key]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|p| {
                            (
                                p[0].as_str().unwrap_or_default().to_string(),
                                p[1].as_str().unwrap_or_default().to_string(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        let strings = |key: &str| -> Vec<String> {
            v[key]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        Report {
            sections: pairs("sections"),
            figures: pairs("figures"),
            failures: strings("failures"),
            notes: strings("notes"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_survives_its_json_form() {
        let mut r = Report::default();
        r.section("Open relay", "body | with | pipes\n".into());
        r.figure("escapes", "0".into());
        r.fail("x".into());
        r.note("y".into());
        let back = Report::from_json(&r.to_json());
        assert_eq!(back.sections, r.sections);
        assert_eq!(back.figures, r.figures);
        assert_eq!(back.failures, r.failures);
        assert_eq!(back.notes, r.notes);
    }
}
