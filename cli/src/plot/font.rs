//! The one font every figure uses: a TrueType file read at run time and registered with plotters'
//! ab_glyph renderer, so text renders the same on any machine with no fontconfig or system fonts.

use anyhow::Context;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Where Debian's `fonts-dejavu-core` puts DejaVu Sans.
pub const DEFAULT_FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
/// The Debian package that provides [`DEFAULT_FONT`].
pub const FONT_PACKAGE: &str = "fonts-dejavu-core";
/// The family name figures ask for; [`load`] registers the file under it.
pub const FAMILY: &str = "sans-serif";

/// The file registered so far; plotters keeps fonts in a process-wide table.
static REGISTERED: Mutex<Option<PathBuf>> = Mutex::new(None);

/// Reads `path` and registers it as [`FAMILY`] for every style. Loading the same file again is
/// free, so each figure can call this first.
pub fn load(path: &Path) -> anyhow::Result<()> {
    let mut registered = REGISTERED.lock().unwrap_or_else(|e| e.into_inner());
    if registered.as_deref() == Some(path) {
        return Ok(());
    }
    if !path.exists() {
        anyhow::bail!(
            "{}: font file not found; figures need a TrueType font: install `{FONT_PACKAGE}` \
             (apt-get install {FONT_PACKAGE}, or scripts/setup.sh), or point --font / SWEEP_PLOT_FONT at any .ttf file",
            path.display()
        );
    }
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read the font file", path.display()))?;
    // plotters keeps a `'static` reference; a font is loaded once per process, so leaking it is
    // the intended lifetime rather than a leak that grows.
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    for style in [plotters::style::FontStyle::Normal, plotters::style::FontStyle::Bold] {
        plotters::style::register_font(FAMILY, style, bytes).map_err(|_| {
            anyhow::anyhow!(
                "{}: not a TrueType or OpenType font; expected a .ttf file such as {DEFAULT_FONT}",
                path.display()
            )
        })?;
    }
    *registered = Some(path.to_path_buf());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_font_names_the_file_and_the_package() {
        let err = load(Path::new("/nonexistent/NoSuchFont.ttf")).unwrap_err().to_string();
        assert!(err.contains("/nonexistent/NoSuchFont.ttf") && err.contains(FONT_PACKAGE), "{err}");
    }

    #[test]
    fn a_file_that_is_no_font_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("not-a-font.ttf");
        std::fs::write(&path, b"hello").expect("write");
        let err = load(&path).unwrap_err().to_string();
        assert!(err.contains("not a TrueType"), "{err}");
    }
}
