//! Headless Chromium (Debian's `chromium`) and the PNG screenshots it takes, decoded so a test
//! can count the pixels of a colour: a page or a plot that was never looked at must not pass.

use super::DEADLINE;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Debian's Chromium (or `$CHROMIUM`); without it the test fails and says how to get it: a
/// page that was never looked at must not pass.
pub fn chromium() -> std::path::PathBuf {
    let candidates = [
        std::env::var("CHROMIUM").ok(),
        Some("/usr/bin/chromium".to_string()),
        Some("/usr/bin/chromium-browser".to_string()),
    ];
    candidates
        .into_iter()
        .flatten()
        .map(std::path::PathBuf::from)
        .find(|path| path.is_file())
        .unwrap_or_else(|| {
            panic!(
                "Chromium is not installed, so the pictures cannot be checked. \
                 Install Debian's package: apt-get update && apt-get install -y chromium \
                 (.ci/run does), or set CHROMIUM to its path."
            )
        })
}

/// Runs headless Chromium with `args` then `url`, killed after the deadline.
pub fn run_chromium(profile: &std::path::Path, args: &[String], url: &str) -> std::process::Output {
    let mut child = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("chromium starts");
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
            panic!("chromium did not finish within {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.wait_with_output().unwrap()
}

/// A decoded screenshot: width, height, channels per pixel and the pixels, row by row.
pub struct Screenshot {
    pub width: u32,
    pub height: u32,
    pub channels: usize,
    pub pixels: Vec<u8>,
}

impl Screenshot {
    /// Takes a `width`×`height` screenshot of `url` into `dir/name.png` and decodes it.
    pub fn take(
        dir: &std::path::Path,
        name: &str,
        url: &str,
        width: u32,
        height: u32,
    ) -> Screenshot {
        let shot = dir.join(format!("{name}.png"));
        let output = run_chromium(
            &dir.join(format!("profile-{name}")),
            &[
                format!("--screenshot={}", shot.display()),
                format!("--window-size={width},{height}"),
            ],
            url,
        );
        assert!(
            shot.is_file(),
            "chromium wrote no screenshot: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let decoder = png::Decoder::new(std::fs::File::open(&shot).unwrap());
        let mut reader = decoder.read_info().unwrap();
        let mut buffer = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buffer).unwrap();
        buffer.truncate(info.buffer_size());
        Screenshot {
            width: info.width,
            height: info.height,
            channels: info.color_type.samples(),
            pixels: buffer,
        }
    }

    fn near(pixel: &[u8], rgb: [u8; 3]) -> bool {
        pixel[..3]
            .iter()
            .zip(rgb)
            .all(|(have, want)| have.abs_diff(want) <= 24)
    }

    /// How many pixels are within a small distance of `rgb` (anti-aliased edges are not).
    pub fn pixels_near(&self, rgb: [u8; 3]) -> usize {
        self.pixels
            .chunks(self.channels)
            .filter(|pixel| Self::near(pixel, rgb))
            .count()
    }

    /// The leftmost and rightmost columns holding a pixel near `rgb`, if any.
    pub fn columns_near(&self, rgb: [u8; 3]) -> Option<(u32, u32)> {
        let mut span: Option<(u32, u32)> = None;
        for (index, pixel) in self.pixels.chunks(self.channels).enumerate() {
            if Self::near(pixel, rgb) {
                let x = (index % self.width as usize) as u32;
                span = Some(span.map_or((x, x), |(low, high)| (low.min(x), high.max(x))));
            }
        }
        span
    }
}
