//! The results folder: Markdown tables and PNG line plots (plotters on an
//! RGB buffer, encoded with the png crate so no image stack is pulled in).

use std::path::Path;

use plotters::prelude::*;
use thiserror::Error;

/// A plot that could not be drawn or written.
#[derive(Debug, Error)]
pub enum PlotError {
    /// plotters refused to draw (e.g. no font could be registered).
    #[error("drawing {0}: {1}")]
    Draw(String, String),
    /// The PNG could not be written.
    #[error("writing {0}: {1}")]
    Write(String, String),
}

/// A Markdown table with a header row.
pub fn md_table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut s = format!(
        "| {} |\n|{}|\n",
        headers.join(" | "),
        headers.iter().map(|_| "---").collect::<Vec<_>>().join("|")
    );
    for row in rows {
        s.push_str(&format!("| {} |\n", row.join(" | ")));
    }
    s
}

/// One result row, built once: each part is a value for `results.json`
/// under a key, a cell of the `results.md` table, or both, so the two
/// outputs cannot disagree.
#[derive(Debug, Default, Clone)]
pub struct Row {
    json: serde_json::Map<String, serde_json::Value>,
    cells: Vec<String>,
}

impl Row {
    /// An empty row.
    pub fn new() -> Row {
        Row::default()
    }

    /// A cell of the Markdown table only.
    pub fn text(mut self, cell: impl Into<String>) -> Row {
        self.cells.push(cell.into());
        self
    }

    /// A value of results.json only.
    pub fn value(mut self, key: &str, value: impl serde::Serialize) -> Row {
        self.json.insert(
            key.to_string(),
            serde_json::to_value(value).unwrap_or(serde_json::Value::Null),
        );
        self
    }

    /// A number: under `key` in results.json, and a cell with `decimals`
    /// digits after the point in results.md.
    pub fn num(self, key: &str, value: f64, decimals: usize) -> Row {
        self.value(key, value).text(format!("{value:.decimals$}"))
    }

    /// The row's results.json object.
    pub fn json(&self) -> serde_json::Value {
        serde_json::Value::Object(self.json.clone())
    }

    /// The row's Markdown cells, in order.
    pub fn cells(&self) -> &[String] {
        &self.cells
    }
}

/// A Markdown table of `rows` under `headers`.
pub fn md_rows(headers: &[&str], rows: &[Row]) -> String {
    let cells: Vec<Vec<String>> = rows.iter().map(|r| r.cells().to_vec()).collect();
    md_table(headers, &cells)
}

/// Registers DejaVu Sans (Debian's fonts-dejavu-core) as plotters'
/// sans-serif; plots need it for their labels.
pub fn register_font() -> bool {
    static DONE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *DONE.get_or_init(|| {
        let Ok(bytes) = std::fs::read("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf") else {
            return false;
        };
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok()
    })
}

/// One named line of a plot.
pub struct Series {
    /// Legend label.
    pub name: String,
    /// Points (x, y).
    pub points: Vec<(f64, f64)>,
}

/// Draws line series into a 1000x600 PNG; `marker_x` draws a vertical line
/// (the kill).
pub fn line_plot(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    marker_x: Option<f64>,
) -> Result<(), PlotError> {
    let name = path.display().to_string();
    let draw_err = |e: &dyn std::fmt::Display| PlotError::Draw(name.clone(), e.to_string());
    if !register_font() {
        return Err(draw_err(&"no font: install fonts-dejavu-core"));
    }
    let (w, h) = (1000u32, 600u32);
    let mut buf = vec![255u8; (w * h * 3) as usize];
    {
        let (mut x0, mut x1, mut y1) = (f64::MAX, f64::MIN, 0.0f64);
        for p in series.iter().flat_map(|s| s.points.iter()) {
            x0 = x0.min(p.0);
            x1 = x1.max(p.0);
            y1 = y1.max(p.1);
        }
        if x0 >= x1 {
            x0 = 0.0;
            x1 = x0 + 1.0;
        }
        let y1 = if y1 > 0.0 { y1 * 1.1 } else { 1.0 };
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| draw_err(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(x0..x1, 0.0..y1)
            .map_err(|e| draw_err(&e))?;
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc(y_label)
            .draw()
            .map_err(|e| draw_err(&e))?;
        for (i, s) in series.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            chart
                .draw_series(LineSeries::new(
                    s.points.iter().copied(),
                    color.stroke_width(2),
                ))
                .map_err(|e| draw_err(&e))?
                .label(s.name.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
        }
        if let Some(mx) = marker_x {
            chart
                .draw_series(LineSeries::new(
                    vec![(mx, 0.0), (mx, y1)],
                    RED.stroke_width(1),
                ))
                .map_err(|e| draw_err(&e))?
                .label("kill")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| draw_err(&e))?;
        root.present().map_err(|e| draw_err(&e))?;
    }
    write_png(path, w, h, &buf).map_err(|e| PlotError::Write(name.clone(), e.to_string()))
}

fn write_png(path: &Path, w: u32, h: u32, rgb: &[u8]) -> Result<(), png::EncodingError> {
    let file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut enc = png::Encoder::new(file, w, h);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc.write_header()?;
    writer.write_image_data(rgb)?;
    writer.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_is_one_json_object_and_one_table_line() {
        let row = Row::new()
            .text("1K req/s, 64 conn")
            .value("connections", 64u64)
            .num("rps_on", 1234.56, 0)
            .num("ratio", 0.98765, 3);
        assert_eq!(
            row.json(),
            serde_json::json!({"connections": 64, "rps_on": 1234.56, "ratio": 0.98765})
        );
        assert_eq!(
            md_rows(&["run", "on", "ratio"], &[row]),
            "| run | on | ratio |\n|---|---|---|\n| 1K req/s, 64 conn | 1235 | 0.988 |\n"
        );
    }

    #[test]
    fn markdown_table_has_header_separator_and_rows() {
        let t = md_table(&["a", "b"], &[vec!["1".into(), "2".into()]]);
        assert_eq!(t, "| a | b |\n|---|---|\n| 1 | 2 |\n");
    }

    #[test]
    fn plot_is_written_as_a_png_file() {
        let dir = std::env::temp_dir().join(format!("baton-bench-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("p.png");
        let s = Series {
            name: "goodput".into(),
            points: vec![(-1.0, 5.0), (0.0, 0.0), (1.0, 5.0)],
        };
        line_plot(&path, "t", "s", "MB/s", &[s], Some(0.0)).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        assert!(
            bytes.len() > 2000,
            "a blank image would be tiny: {}",
            bytes.len()
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
