//! Decoding photos into RGB with the checks a hostile or broken file needs: a pixel limit
//! checked before the pixels are allocated, and EXIF orientation applied.

use std::io::Cursor;
use std::path::Path;

use image::{DynamicImage, ImageDecoder, ImageReader, RgbImage};

/// Refuse pictures larger than this many pixels unless configured otherwise (a 48 MP photo
/// is still accepted; a decompression bomb is not).
pub const DEFAULT_MAX_PIXELS: u64 = 50_000_000;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("cannot read file: {0}")]
    Io(#[from] std::io::Error),
    #[error("empty file")]
    Empty,
    #[error("not a supported image (JPEG, PNG, BMP, WebP, GIF, TIFF)")]
    UnknownFormat,
    #[error("image is {width}x{height} = {pixels} pixels, over the limit of {limit}")]
    TooLarge {
        width: u32,
        height: u32,
        pixels: u64,
        limit: u64,
    },
    #[error("corrupt or truncated image: {0}")]
    Corrupt(String),
}

/// Decodes an image file to RGB.
pub fn load_rgb(path: &Path, max_pixels: u64) -> Result<RgbImage, ImageError> {
    let bytes = std::fs::read(path)?;
    decode_rgb(&bytes, max_pixels)
}

/// Decodes image bytes to RGB.
pub fn decode_rgb(bytes: &[u8], max_pixels: u64) -> Result<RgbImage, ImageError> {
    if bytes.is_empty() {
        return Err(ImageError::Empty);
    }
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(ImageError::Io)?;
    match reader.format() {
        None => return Err(ImageError::UnknownFormat),
        // The JPEG decoder pads a truncated scan with grey instead of failing.
        Some(image::ImageFormat::Jpeg) if !jpeg_is_complete(bytes) => {
            return Err(ImageError::Corrupt(
                "JPEG ends before its end-of-image marker".into(),
            ))
        }
        Some(_) => {}
    }
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| ImageError::Corrupt(e.to_string()))?;
    let (width, height) = decoder.dimensions();
    let pixels = u64::from(width) * u64::from(height);
    if pixels > max_pixels {
        return Err(ImageError::TooLarge {
            width,
            height,
            pixels,
            limit: max_pixels,
        });
    }
    if pixels == 0 {
        return Err(ImageError::Corrupt("zero-sized image".into()));
    }
    let orientation = decoder.orientation().ok();
    let mut image =
        DynamicImage::from_decoder(decoder).map_err(|e| ImageError::Corrupt(e.to_string()))?;
    if let Some(orientation) = orientation {
        image.apply_orientation(orientation);
    }
    Ok(image.into_rgb8())
}

/// Whether an end-of-image marker follows the last start-of-scan marker. Inside entropy-coded
/// data a 0xFF byte is always followed by 0x00 or a restart marker, so neither marker can occur
/// there by accident.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let last_marker = |marker: u8| {
        bytes
            .windows(2)
            .rposition(|w| w[0] == 0xFF && w[1] == marker)
    };
    match (last_marker(0xDA), last_marker(0xD9)) {
        (Some(sos), Some(eoi)) => eoi > sos,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg(width: u32, height: u32) -> Vec<u8> {
        let img = RgbImage::from_fn(width, height, |x, y| image::Rgb([x as u8, y as u8, 128]));
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new(&mut out)
            .encode_image(&img)
            .unwrap();
        out
    }

    #[test]
    fn decodes_a_jpeg() {
        let img = decode_rgb(&jpeg(64, 32), DEFAULT_MAX_PIXELS).unwrap();
        assert_eq!(img.dimensions(), (64, 32));
    }

    #[test]
    fn refuses_empty_unknown_truncated_and_huge() {
        assert!(matches!(
            decode_rgb(&[], DEFAULT_MAX_PIXELS),
            Err(ImageError::Empty)
        ));
        assert!(matches!(
            decode_rgb(b"hello, world", DEFAULT_MAX_PIXELS),
            Err(ImageError::UnknownFormat)
        ));
        let bytes = jpeg(64, 64);
        let truncated = &bytes[..bytes.len() / 2];
        assert!(matches!(
            decode_rgb(truncated, DEFAULT_MAX_PIXELS),
            Err(ImageError::Corrupt(_))
        ));
        assert!(matches!(
            decode_rgb(&bytes, 64 * 64 - 1),
            Err(ImageError::TooLarge { pixels: 4096, .. })
        ));
    }
}
