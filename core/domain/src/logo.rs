//! Organization logo rules, from the admin guide: PNG or JPEG, white or transparent
//! background, at least 400×400 pixels, at most 780 KB. Every violated rule is reported.

use std::io::Cursor;

use image::{GenericImageView, ImageFormat, ImageReader, Limits};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{DomainError, Violations};

pub const MAX_LOGO_BYTES: usize = 780 * 1024;
pub const MIN_LOGO_SIDE: u32 = 400;
/// Larger images are refused from their header, before decoding: a 780 KB PNG can
/// claim 65,535 × 65,535 pixels (a decompression bomb). 4096 a side and 16 million
/// pixels leave ten times the 400 × 400 the rule asks for; the decoder may then
/// allocate at most [`MAX_DECODE_BYTES`] (16 Mpx of RGBA is 64 MiB).
pub const MAX_LOGO_SIDE: u32 = 4096;
pub const MAX_LOGO_PIXELS: u64 = 16 * 1024 * 1024;
pub const MAX_DECODE_BYTES: u64 = 80 * 1024 * 1024;
/// Share of border pixels that must be white or transparent.
const BACKGROUND_SHARE: f64 = 0.95;

/// A validated logo: what the organization's events record about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogoInfo {
    pub sha256: String,
    pub content_type: String,
    pub width: u32,
    pub height: u32,
    pub bytes: u64,
}

/// Validates an uploaded logo and describes it.
pub fn validate_logo(bytes: &[u8]) -> Result<LogoInfo, DomainError> {
    let mut v = Violations::default();
    if bytes.len() > MAX_LOGO_BYTES {
        v.add(
            "logo",
            format!(
                "the file is {} KB; the limit is 780 KB",
                bytes.len().div_ceil(1024)
            ),
        );
    }
    let format = match image::guess_format(bytes) {
        Ok(ImageFormat::Png) => ImageFormat::Png,
        Ok(ImageFormat::Jpeg) => ImageFormat::Jpeg,
        _ => {
            v.add("logo", "the file must be a PNG or a JPEG image");
            v.into_result()?;
            unreachable!("a violation was added")
        }
    };
    let content_type = if format == ImageFormat::Png {
        "image/png"
    } else {
        "image/jpeg"
    };
    let limits = || {
        let mut limits = Limits::default();
        limits.max_image_width = Some(MAX_LOGO_SIDE);
        limits.max_image_height = Some(MAX_LOGO_SIDE);
        limits.max_alloc = Some(MAX_DECODE_BYTES);
        limits
    };
    // The header is read without limits (it allocates nothing), so that a claimed
    // size over the bounds is named as such rather than as a decoder limit.
    let mut header = ImageReader::with_format(Cursor::new(bytes), format);
    header.no_limits();
    match header.into_dimensions() {
        Ok((w, h))
            if w > MAX_LOGO_SIDE
                || h > MAX_LOGO_SIDE
                || u64::from(w) * u64::from(h) > MAX_LOGO_PIXELS =>
        {
            v.add(
                "logo",
                format!("the image is {w}×{h} px; it must be at most {MAX_LOGO_SIDE}×{MAX_LOGO_SIDE} px"),
            );
            v.into_result()?;
            unreachable!("a violation was added")
        }
        _ => {}
    }
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    reader.limits(limits());
    let image = match reader.decode() {
        Ok(image) => image,
        Err(e) => {
            v.add("logo", format!("the image cannot be read: {e}"));
            v.into_result()?;
            unreachable!("a violation was added")
        }
    };
    let (width, height) = image.dimensions();
    if width < MIN_LOGO_SIDE || height < MIN_LOGO_SIDE {
        v.add(
            "logo",
            format!("the image is {width}×{height} px; it must be at least 400×400 px"),
        );
    }
    if !background_is_white_or_transparent(&image) {
        v.add("logo", "the background must be white or transparent");
    }
    v.into_result()?;
    Ok(LogoInfo {
        sha256: hex::encode(Sha256::digest(bytes)),
        content_type: content_type.to_string(),
        width,
        height,
        bytes: bytes.len() as u64,
    })
}

/// Judges the background by the image's outermost pixels (read one by one: the
/// image is not copied whole into RGBA for its border).
fn background_is_white_or_transparent(image: &image::DynamicImage) -> bool {
    let (w, h) = image.dimensions();
    if w == 0 || h == 0 {
        return false;
    }
    let mut total = 0u64;
    let mut background = 0u64;
    let mut look = |x: u32, y: u32| {
        let p = image.get_pixel(x, y).0;
        total += 1;
        let transparent = p[3] < 16;
        let white = p[0] >= 235 && p[1] >= 235 && p[2] >= 235;
        if transparent || white {
            background += 1;
        }
    };
    for x in 0..w {
        look(x, 0);
        look(x, h - 1);
    }
    for y in 1..h.saturating_sub(1) {
        look(0, y);
        look(w - 1, y);
    }
    background as f64 >= total as f64 * BACKGROUND_SHARE
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageBuffer, Rgba};

    fn png(w: u32, h: u32, background: [u8; 4]) -> Vec<u8> {
        let img = ImageBuffer::from_fn(w, h, |x, y| {
            if x > w / 4 && x < 3 * w / 4 && y > h / 4 && y < 3 * h / 4 {
                Rgba([200, 20, 20, 255])
            } else {
                Rgba(background)
            }
        });
        let mut out = Vec::new();
        img.write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
            .unwrap();
        out
    }

    fn messages(err: DomainError) -> Vec<String> {
        match err {
            DomainError::Invalid(list) => list.into_iter().map(|e| e.message).collect(),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn accepts_white_and_transparent_backgrounds() {
        let info = validate_logo(&png(400, 420, [255, 255, 255, 255])).unwrap();
        assert_eq!((info.width, info.height), (400, 420));
        assert_eq!(info.content_type, "image/png");
        assert_eq!(info.sha256.len(), 64);
        validate_logo(&png(500, 500, [0, 0, 0, 0])).unwrap();
    }

    #[test]
    fn reports_every_violated_rule() {
        let m = messages(validate_logo(&png(300, 200, [0, 0, 255, 255])).unwrap_err());
        assert_eq!(m.len(), 2, "{m:?}");
        assert!(m[0].contains("300×200"), "{m:?}");
        assert!(m[1].contains("white or transparent"), "{m:?}");
    }

    #[test]
    fn rejects_other_formats_and_garbage() {
        let m = messages(validate_logo(b"GIF89a....").unwrap_err());
        assert!(m[0].contains("PNG or a JPEG"));
        let mut truncated = png(400, 400, [255, 255, 255, 255]);
        truncated.truncate(60);
        let m = messages(validate_logo(&truncated).unwrap_err());
        assert!(m[0].contains("cannot be read"), "{m:?}");
    }

    /// A PNG whose header claims `w`×`h` with one small, valid-checksummed IDAT.
    fn claimed_png(w: u32, h: u32) -> Vec<u8> {
        fn crc32(bytes: &[u8]) -> u32 {
            let mut crc = 0xffff_ffffu32;
            for &b in bytes {
                crc ^= u32::from(b);
                for _ in 0..8 {
                    crc = if crc & 1 == 1 {
                        (crc >> 1) ^ 0xedb8_8320
                    } else {
                        crc >> 1
                    };
                }
            }
            !crc
        }
        fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
            out.extend_from_slice(&(data.len() as u32).to_be_bytes());
            let mut typed = kind.to_vec();
            typed.extend_from_slice(data);
            out.extend_from_slice(&typed);
            out.extend_from_slice(&crc32(&typed).to_be_bytes());
        }
        let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
        let mut ihdr = Vec::new();
        ihdr.extend_from_slice(&w.to_be_bytes());
        ihdr.extend_from_slice(&h.to_be_bytes());
        ihdr.extend_from_slice(&[8, 6, 0, 0, 0]); // 8-bit RGBA
        chunk(&mut out, b"IHDR", &ihdr);
        chunk(
            &mut out,
            b"IDAT",
            &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
        );
        chunk(&mut out, b"IEND", &[]);
        out
    }

    #[test]
    fn huge_claimed_dimensions_are_refused_before_decoding() {
        // 65,535² RGBA would be 16 GiB; the file is 70 bytes.
        for (w, h) in [(65_535, 65_535), (4097, 400), (4096, 4097)] {
            let bomb = claimed_png(w, h);
            assert!(bomb.len() < 100);
            let m = messages(validate_logo(&bomb).unwrap_err());
            assert!(
                m.iter().any(|m| m.contains("at most 4096×4096")),
                "{w}×{h}: {m:?}"
            );
        }
        // Within the bounds the header passes and the (empty) data is what fails.
        let m = messages(validate_logo(&claimed_png(500, 500)).unwrap_err());
        assert!(m[0].contains("cannot be read"), "{m:?}");
    }

    #[test]
    fn rejects_files_over_780_kb() {
        let mut big = png(400, 400, [255, 255, 255, 255]);
        big.resize(MAX_LOGO_BYTES + 1, 0);
        let m = messages(validate_logo(&big).unwrap_err());
        assert!(m.iter().any(|m| m.contains("780 KB")), "{m:?}");
    }
}
