//! QR codes of the links people open on a phone: SVG for pages and browsers, PNG for devices
//! that can only show a bitmap. One renderer for every surface.

use qrcode::render::svg;
use qrcode::{Color, QrCode};

/// Light modules around the code, as ISO/IEC 18004 asks for scanners to find it.
pub const QUIET_ZONE: u32 = 4;
/// The least width and height of a rendered code, in pixels.
pub const MIN_SIZE: u32 = 200;

/// Why a QR code could not be made: the text is too long for any QR version, or the PNG
/// encoder failed. Neither happens for a verification link.
#[derive(Debug, thiserror::Error)]
pub enum QrError {
    #[error("cannot encode a QR code: {0}")]
    Encode(#[from] qrcode::types::QrError),
    #[error("cannot encode a PNG: {0}")]
    Png(#[from] png::EncodingError),
}

/// A text encoded as a QR code, ready to render.
pub struct Qr(QrCode);

impl Qr {
    /// # Errors
    /// When the text does not fit in a QR code.
    pub fn new(text: &str) -> Result<Self, QrError> {
        Ok(Self(QrCode::new(text.as_bytes())?))
    }

    /// An SVG document without XML prologue, so it serves as a file and inlines into HTML
    /// alike: black on white, with the quiet zone, at least [`MIN_SIZE`] wide, named by
    /// `label` for screen readers (`role="img"`).
    #[must_use]
    pub fn svg(&self, label: &str) -> String {
        let rendered = self
            .0
            .render::<svg::Color<'_>>()
            .quiet_zone(true)
            .min_dimensions(MIN_SIZE, MIN_SIZE)
            .dark_color(svg::Color("#000000"))
            .light_color(svg::Color("#ffffff"))
            .build();
        let start = rendered.find("<svg").unwrap_or(0);
        let mut labelled = String::from("<svg role=\"img\" aria-label=\"");
        for c in label.chars() {
            match c {
                '&' => labelled.push_str("&amp;"),
                '<' => labelled.push_str("&lt;"),
                '>' => labelled.push_str("&gt;"),
                '"' => labelled.push_str("&quot;"),
                c => labelled.push(c),
            }
        }
        labelled.push('"');
        labelled.push_str(&rendered[start + "<svg".len()..]);
        labelled
    }

    /// A PNG: 8-bit greyscale, black modules on white, a quiet zone of [`QUIET_ZONE`] modules,
    /// each module a square of whole pixels so the image is at least [`MIN_SIZE`] wide.
    ///
    /// # Errors
    /// When the PNG encoder fails.
    pub fn png(&self) -> Result<Vec<u8>, QrError> {
        let (side, pixels) = self.greyscale();
        let mut out = Vec::new();
        let mut encoder = png::Encoder::new(&mut out, side, side);
        encoder.set_color(png::ColorType::Grayscale);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header()?;
        writer.write_image_data(&pixels)?;
        writer.finish()?;
        Ok(out)
    }

    /// The image's side in pixels and its rows of pixels (0 dark, 255 light).
    fn greyscale(&self) -> (u32, Vec<u8>) {
        let modules = u32::try_from(self.0.width()).unwrap_or(u32::MAX);
        let with_margin = modules + 2 * QUIET_ZONE;
        let scale = MIN_SIZE.div_ceil(with_margin).max(1);
        let side = with_margin * scale;
        let colors = self.0.to_colors();
        let mut pixels = vec![u8::MAX; (side as usize) * (side as usize)];
        for (i, color) in colors.iter().enumerate() {
            if *color != Color::Dark {
                continue;
            }
            let i = u32::try_from(i).unwrap_or(u32::MAX);
            let (x, y) = (i % modules + QUIET_ZONE, i / modules + QUIET_ZONE);
            for row in y * scale..(y + 1) * scale {
                let start = (row * side + x * scale) as usize;
                pixels[start..start + scale as usize].fill(0);
            }
        }
        (side, pixels)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINK: &str = "https://id.example/activate?user_code=BCDF-GHJK";

    #[test]
    fn the_svg_is_a_labelled_document_without_prologue() {
        let svg = Qr::new(LINK).unwrap().svg("QR code of \"the\" <link>");
        assert!(
            svg.starts_with("<svg role=\"img\" aria-label=\"QR code of &quot;the&quot; &lt;link&gt;\" xmlns=\"http://www.w3.org/2000/svg\""),
            "{svg}"
        );
        assert!(svg.trim_end().ends_with("</svg>"));
        assert!(!svg.contains("<?xml"));
    }

    #[test]
    fn the_png_is_black_on_white_with_a_quiet_zone_and_at_least_200_pixels() {
        let qr = Qr::new(LINK).unwrap();
        let png = qr.png().unwrap();
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
        let (side, pixels) = qr.greyscale();
        assert!(side >= MIN_SIZE);
        let modules = u32::try_from(qr.0.width()).unwrap();
        let scale = side / (modules + 2 * QUIET_ZONE);
        assert_eq!(
            side % (modules + 2 * QUIET_ZONE),
            0,
            "whole pixels per module"
        );
        let at = |x: u32, y: u32| pixels[(y * side + x) as usize];
        // The quiet zone is white all round; the finder pattern's corner is black.
        for i in 0..side {
            for edge in 0..QUIET_ZONE * scale {
                assert_eq!(at(i, edge), 255);
                assert_eq!(at(edge, i), 255);
                assert_eq!(at(i, side - 1 - edge), 255);
                assert_eq!(at(side - 1 - edge, i), 255);
            }
        }
        assert_eq!(at(QUIET_ZONE * scale, QUIET_ZONE * scale), 0);
        assert!(pixels.iter().all(|p| *p == 0 || *p == 255));
    }
}
