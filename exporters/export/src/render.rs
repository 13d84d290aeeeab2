//! A window as the app writes it: the events sorted by timestamp descending, as a
//! JSON array — `MultiLine` (indented by 2, like `json.dumps(indent=2)`) or
//! `SingleLine` (`[` + events joined by `,\n` + `]`) — gzipped at level 6; and the
//! object key.

use flate2::Compression;

/// RFC 3339 UTC, seconds, `Z` (the app's `isoformat() + "Z"` without microseconds).
pub fn iso(ms: i64) -> String {
    castellan_insights::event::format_ms(ms)
        .split('.')
        .next()
        .map(|s| format!("{s}Z"))
        .unwrap_or_default()
}

/// The object key of a window (`service` only for the per-service form).
pub fn key(
    prefix: &str,
    form: &str,
    org: &str,
    service: Option<&str>,
    start: i64,
    end: i64,
) -> String {
    let prefix = if prefix.is_empty() || prefix.ends_with('/') {
        prefix.to_string()
    } else {
        format!("{prefix}/")
    };
    match service {
        Some(svc) if form == "org_service" => format!(
            "{prefix}jc_directoryinsights_{org}_{svc}_{}_{}.json.gz",
            iso(start).replace(':', "-"),
            iso(end).replace(':', "-")
        ),
        _ => format!(
            "{prefix}{org}/jc_directoryinsights_{}_{}.json.gz",
            iso(start),
            iso(end)
        ),
    }
}

/// Events rendered and compressed per chunk; a chunk is this many events.
const CHUNK_EVENTS: usize = 2000;

/// The events (already newest first; each a compact JSON object as stored) as the
/// gzipped JSON array.
///
/// The array is cut into chunks of events that are rendered and deflated on every
/// core, then joined into one gzip member the way pigz does it: each chunk but the last
/// ends on a byte boundary (a sync flush), the CRC-32s are combined. So the object is
/// an ordinary single-member gzip file that any reader takes.
pub fn gzip_json<S: AsRef<str> + Sync>(
    events: &[S],
    single_line: bool,
) -> std::io::Result<Vec<u8>> {
    let chunks: Vec<&[S]> = events.chunks(CHUNK_EVENTS).collect();
    let last = chunks.len().saturating_sub(1);
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(chunks.len().max(1));
    let mut done: Vec<Option<std::io::Result<Deflated>>> =
        (0..chunks.len()).map(|_| None).collect();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                let chunks = &chunks;
                scope.spawn(move || {
                    (w..chunks.len())
                        .step_by(workers)
                        .map(|i| {
                            let text = render_chunk(chunks[i], i == 0, i == last, single_line);
                            (i, deflate(&text, i == last))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for h in handles {
            for (i, d) in h.join().expect("rendering a chunk does not panic") {
                done[i] = Some(d);
            }
        }
    });
    // The gzip header: deflate, no name, no time, unknown OS.
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    let mut crc = crc32fast::Hasher::new();
    let mut length: u64 = 0;
    if events.is_empty() {
        let text = b"[]";
        let d = deflate(text, true)?;
        out.extend_from_slice(&d.data);
        crc = d.crc;
        length = d.length;
    }
    for d in done {
        let d = d.expect("every chunk was deflated")?;
        out.extend_from_slice(&d.data);
        crc.combine(&d.crc);
        length += d.length;
    }
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    out.extend_from_slice(&(length as u32).to_le_bytes());
    Ok(out)
}

/// One chunk deflated, with the CRC-32 and length of its text.
struct Deflated {
    data: Vec<u8>,
    crc: crc32fast::Hasher,
    length: u64,
}

/// Raw deflate at level 6 (gzip's default, not 9: on a 149 MiB window level 9 gave
/// 11.8 MiB in 3.7 s, level 6 12.7 MiB in 1.2 s, on one core); ends on a byte boundary,
/// or with the final block.
fn deflate(text: &[u8], finish: bool) -> std::io::Result<Deflated> {
    use flate2::{Compress, FlushCompress, Status};
    let mut c = Compress::new(Compression::new(6), false);
    let mut data = Vec::with_capacity(text.len() / 8 + 64);
    let flush = if finish {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    loop {
        if data.len() == data.capacity() {
            data.reserve(data.capacity().max(4096));
        }
        let read = c.total_in() as usize;
        let status = c
            .compress_vec(&text[read..], &mut data, flush)
            .map_err(std::io::Error::other)?;
        let all_in = c.total_in() as usize == text.len();
        let room_left = data.len() < data.capacity();
        match status {
            Status::StreamEnd => break,
            // A sync flush is complete once all input is in and output had room.
            Status::Ok | Status::BufError if !finish && all_in && room_left => break,
            _ => {}
        }
    }
    let mut crc = crc32fast::Hasher::new();
    crc.update(text);
    Ok(Deflated {
        data,
        crc,
        length: text.len() as u64,
    })
}

/// A chunk's part of the array's text: `[` before the first event, `]` after the last,
/// separators between (as `json.dumps` writes them).
fn render_chunk<S: AsRef<str>>(
    events: &[S],
    first: bool,
    last: bool,
    single_line: bool,
) -> Vec<u8> {
    let size: usize = events.iter().map(|e| e.as_ref().len()).sum();
    let mut out = Vec::with_capacity(if single_line {
        size + 4 * events.len()
    } else {
        size * 2
    });
    if first {
        out.extend_from_slice(if single_line { b"[" } else { b"[\n" });
    }
    for (i, e) in events.iter().enumerate() {
        if i > 0 || !first {
            out.extend_from_slice(b",\n");
        }
        if single_line {
            out.extend_from_slice(e.as_ref().as_bytes());
        } else {
            out.extend_from_slice(b"  ");
            pretty(e.as_ref().as_bytes(), 1, &mut out);
        }
    }
    if last {
        out.extend_from_slice(if single_line { b"]" } else { b"\n]" });
    }
    out
}

/// Compact JSON text indented by 2 at nesting `depth`, exactly as serde_json's pretty
/// printer writes the same value: the text is only re-spaced, never parsed into values.
fn pretty(compact: &[u8], depth: usize, out: &mut Vec<u8>) {
    let indent = |out: &mut Vec<u8>, depth: usize| {
        out.push(b'\n');
        out.resize(out.len() + 2 * depth, b' ');
    };
    let mut depth = depth;
    let mut i = 0;
    while i < compact.len() {
        let b = compact[i];
        match b {
            b'"' => {
                // Copy the string, quotes included, in one go.
                let rest = &compact[i + 1..];
                let mut j = 0;
                while j < rest.len() && rest[j] != b'"' {
                    j += if rest[j] == b'\\' { 2 } else { 1 };
                }
                let end = (i + 1 + j + 1).min(compact.len());
                out.extend_from_slice(&compact[i..end]);
                i = end;
                continue;
            }
            b'{' | b'[' => {
                let close = if b == b'{' { b'}' } else { b']' };
                if compact.get(i + 1) == Some(&close) {
                    out.extend_from_slice(&[b, close]);
                    i += 1;
                } else {
                    out.push(b);
                    depth += 1;
                    indent(out, depth);
                }
            }
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                indent(out, depth);
                out.push(b);
            }
            b',' => {
                out.push(b',');
                indent(out, depth);
            }
            b':' => out.extend_from_slice(b": "),
            _ => out.push(b),
        }
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};
    use std::io::Read;

    /// The whole file through a reader that stops after the first gzip member, so a
    /// file of several members would fail here.
    fn gunzip_one_member(gz: &[u8]) -> String {
        let mut text = String::new();
        let mut d = flate2::read::GzDecoder::new(gz);
        d.read_to_string(&mut text).unwrap();
        let mut rest = Vec::new();
        d.into_inner().read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty(), "one gzip member, nothing after it");
        text
    }

    #[test]
    fn keys_and_formats_follow_the_app() {
        let (s, e) = (1_764_288_000_000, 1_764_291_600_000);
        assert_eq!(
            key("di", "window", "o1", None, s, e),
            "di/o1/jc_directoryinsights_2025-11-28T00:00:00Z_2025-11-28T01:00:00Z.json.gz"
        );
        assert_eq!(
            key("", "org_service", "o1", Some("ldap"), s, e),
            "jc_directoryinsights_o1_ldap_2025-11-28T00-00-00Z_2025-11-28T01-00-00Z.json.gz"
        );
        let events = vec![json!({"a": 1}), json!({"b": 2})];
        let stored: Vec<String> = events.iter().map(Value::to_string).collect();
        for single in [true, false] {
            let text = gunzip_one_member(&gzip_json(&stored, single).unwrap());
            let back: Vec<Value> = serde_json::from_str(&text).unwrap();
            assert_eq!(back, events);
            assert_eq!(text.lines().count(), if single { 2 } else { 8 });
        }
        let none: Vec<String> = Vec::new();
        assert_eq!(gunzip_one_member(&gzip_json(&none, false).unwrap()), "[]");
    }

    /// The stored text, re-spaced and compressed in chunks on several threads, is
    /// byte for byte what serde_json writes for the parsed events, in one gzip member.
    #[test]
    fn windows_read_back_as_serde_json_writes_them() {
        let tricky = json!({"a": {}, "b": [], "c": [1, {"d": "x,y:{z}[]"}], "e": "quote \" and \\",
            "f": null, "g": {"h": [[], {}], "i": "Ünïcode ✓"}, "j": -1.5e-7, "k": true});
        let events: Vec<Value> = (0..5003)
            .map(|i| {
                let mut e = tricky.clone();
                e["n"] = json!(i);
                e
            })
            .collect();
        let stored: Vec<String> = events.iter().map(Value::to_string).collect();
        let pretty = gunzip_one_member(&gzip_json(&stored, false).unwrap());
        assert_eq!(pretty, serde_json::to_string_pretty(&events).unwrap());
        let single = gunzip_one_member(&gzip_json(&stored, true).unwrap());
        assert_eq!(single, format!("[{}]", stored.join(",\n")));
    }
}
