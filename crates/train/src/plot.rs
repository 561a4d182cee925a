//! The loss curve as a small self-contained SVG (training loss per step, validation loss per
//! evaluation), written next to the adapter.

use std::fmt::Write;

const W: f64 = 640.0;
const H: f64 = 360.0;
const PAD: f64 = 48.0;

/// `train` and `valid` are `(step, loss)` points.
pub fn loss_svg(train: &[(usize, f64)], valid: &[(usize, f64)]) -> String {
    let all = train.iter().chain(valid);
    let max_step = all.clone().map(|p| p.0).max().unwrap_or(1).max(1) as f64;
    let max_loss = all.clone().map(|p| p.1).fold(0.0f64, f64::max).max(1e-6);
    let x = |s: usize| PAD + (s as f64 / max_step) * (W - 2.0 * PAD);
    let y = |l: f64| H - PAD - (l / max_loss) * (H - 2.0 * PAD);
    let line = |points: &[(usize, f64)], color: &str| {
        let coords: Vec<String> = points
            .iter()
            .map(|&(s, l)| format!("{:.1},{:.1}", x(s), y(l)))
            .collect();
        format!(
            r#"<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{}"/>"#,
            coords.join(" ")
        )
    };
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = write!(svg, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = write!(
        svg,
        r#"<line x1="{PAD}" y1="{b}" x2="{r}" y2="{b}" stroke="black"/><line x1="{PAD}" y1="{PAD}" x2="{PAD}" y2="{b}" stroke="black"/>"#,
        b = H - PAD,
        r = W - PAD
    );
    let _ = write!(
        svg,
        r#"<text x="{PAD}" y="{}">loss (max {max_loss:.3})</text>"#,
        PAD - 12.0
    );
    let _ = write!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="end">step {max_step}</text>"#,
        W - PAD,
        H - PAD + 20.0
    );
    svg.push_str(&line(train, "#1f77b4"));
    if !valid.is_empty() {
        svg.push_str(&line(valid, "#d62728"));
        let _ = write!(
            svg,
            r##"<text x="{}" y="{PAD}" fill="#d62728" text-anchor="end">validation</text>"##,
            W - PAD
        );
    }
    let _ = write!(
        svg,
        r##"<text x="{}" y="{}" fill="#1f77b4" text-anchor="end">train</text>"##,
        W - PAD,
        PAD + 16.0
    );
    svg.push_str("</svg>\n");
    svg
}
