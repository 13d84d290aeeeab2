//! What an event's raw request facts become in Directory Insights: the `useragent`
//! header parsed into the hosted product's fields (ua-parser's families, through
//! `simple-useragent`), and `geoip` of the client address from a MaxMind DB file the
//! operator configures (`insights.geoip_db`).
//!
//! Both are worked out as events are materialized; the log keeps the raw header and
//! address, so a better parser or a newer database applies to a rebuild.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use serde::Deserialize;

/// The `useragent` object: each field only where the header tells it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct UserAgent {
    /// Sorted by key, as the event's JSON is written.
    pub fields: Vec<(&'static str, String)>,
}

/// How many distinct headers are kept parsed (a directory sees few; a flood of
/// random ones only empties the cache).
const CACHED_AGENTS: usize = 4096;

/// The parsed `useragent` of a header, from a cache (parsing runs a few hundred
/// regular expressions; a directory's clients send the same few headers).
pub fn user_agent(header: &str) -> Arc<UserAgent> {
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<UserAgent>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(hit) = cache.lock().expect("cache lock").get(header) {
        return hit.clone();
    }
    let parsed = Arc::new(parse_user_agent(header));
    let mut cache = cache.lock().expect("cache lock");
    if cache.len() >= CACHED_AGENTS {
        cache.clear();
    }
    cache.insert(header.to_string(), parsed.clone());
    parsed
}

fn parser() -> &'static simple_useragent::UserAgentParser {
    static PARSER: OnceLock<simple_useragent::UserAgentParser> = OnceLock::new();
    PARSER.get_or_init(simple_useragent::UserAgentParser::new)
}

/// `major`, `minor`, `patch` and `build` of a dotted version.
fn version_parts(version: &str) -> impl Iterator<Item = &str> {
    version.split('.').filter(|p| !p.is_empty()).take(4)
}

/// The device family, as ua-parser names the common ones: the header's platform
/// token where it names Apple hardware, `Spider` for crawlers, else `Other`.
fn device_of(header: &str, client: &str) -> &'static str {
    if header.contains("iPhone") {
        "iPhone"
    } else if header.contains("iPad") {
        "iPad"
    } else if header.contains("Macintosh") {
        "Mac"
    } else if client.ends_with("bot") || client.contains("Spider") || client.contains("Bot") {
        "Spider"
    } else {
        "Other"
    }
}

pub fn parse_user_agent(header: &str) -> UserAgent {
    let parsed = parser().parse(header);
    let mut fields: Vec<(&'static str, String)> = Vec::with_capacity(14);
    fields.push(("device", device_of(header, &parsed.client.family).into()));
    let client = parsed.client.family;
    if let Some(v) = parsed.client.version.filter(|v| !v.is_empty()) {
        for (key, part) in ["major", "minor", "patch", "build"]
            .into_iter()
            .zip(version_parts(&v))
        {
            fields.push((key, part.to_string()));
        }
        fields.push(("version", v));
    }
    fields.push(("name", client));
    let os = parsed.os.family;
    match parsed.os.version.filter(|v| !v.is_empty()) {
        Some(v) => {
            fields.push(("os_full", format!("{os} {v}")));
            for (key, part) in ["os_major", "os_minor", "os_patch"]
                .into_iter()
                .zip(version_parts(&v))
            {
                fields.push((key, part.to_string()));
            }
            fields.push(("os_version", v));
        }
        None => fields.push(("os_full", os.clone())),
    }
    fields.push(("os_name", os.clone()));
    fields.push(("os", os));
    fields.sort_by_key(|(k, _)| *k);
    UserAgent { fields }
}

/// The `geoip` object of one address: each field only where the database has it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Geo {
    pub continent_code: Option<String>,
    pub country_code: Option<String>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub region_code: Option<String>,
    pub region_name: Option<String>,
    pub timezone: Option<String>,
}

impl Geo {
    /// The fields as JSON values, sorted by key.
    pub fn fields(&self) -> Vec<(&'static str, serde_json::Value)> {
        let text = |v: &Option<String>| v.as_ref().map(|s| serde_json::Value::from(s.as_str()));
        let number = |v: &Option<f64>| v.map(serde_json::Value::from);
        [
            ("continent_code", text(&self.continent_code)),
            ("country_code", text(&self.country_code)),
            ("latitude", number(&self.latitude)),
            ("longitude", number(&self.longitude)),
            ("region_code", text(&self.region_code)),
            ("region_name", text(&self.region_name)),
            ("timezone", text(&self.timezone)),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect()
    }
}

/// The parts of a GeoIP2/GeoLite2 City (or Country) record that `geoip` shows.
#[derive(Deserialize)]
struct Record {
    #[serde(default)]
    continent: Option<Code>,
    #[serde(default)]
    country: Option<Code>,
    #[serde(default)]
    location: Option<Location>,
    #[serde(default)]
    subdivisions: Option<Vec<Subdivision>>,
}

#[derive(Deserialize)]
struct Code {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    iso_code: Option<String>,
}

#[derive(Deserialize)]
struct Location {
    #[serde(default)]
    latitude: Option<f64>,
    #[serde(default)]
    longitude: Option<f64>,
    #[serde(default)]
    time_zone: Option<String>,
}

#[derive(Deserialize)]
struct Subdivision {
    #[serde(default)]
    iso_code: Option<String>,
    #[serde(default)]
    names: Option<HashMap<String, String>>,
}

/// A MaxMind DB file, read once into memory.
pub struct GeoIp {
    reader: maxminddb::Reader<Vec<u8>>,
}

impl std::fmt::Debug for GeoIp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeoIp")
            .field("database", &self.reader.metadata().database_type)
            .finish()
    }
}

impl GeoIp {
    /// Opens the file; the error names it.
    pub fn open(path: &Path) -> Result<GeoIp, String> {
        let reader = maxminddb::Reader::open_readfile(path)
            .map_err(|e| format!("{}: not a MaxMind DB file: {e}", path.display()))?;
        Ok(GeoIp { reader })
    }

    /// Where `ip` is, if the database knows (private and unknown addresses: None).
    pub fn lookup(&self, ip: &str) -> Option<Geo> {
        let ip: IpAddr = ip.parse().ok()?;
        let record: Record = self.reader.lookup(ip).ok()?.decode().ok()??;
        let subdivision = record.subdivisions.and_then(|s| s.into_iter().next());
        let geo = Geo {
            continent_code: record.continent.and_then(|c| c.code),
            country_code: record.country.and_then(|c| c.iso_code),
            latitude: record.location.as_ref().and_then(|l| l.latitude),
            longitude: record.location.as_ref().and_then(|l| l.longitude),
            region_code: subdivision.as_ref().and_then(|s| s.iso_code.clone()),
            region_name: subdivision
                .and_then(|s| s.names)
                .and_then(|mut n| n.remove("en")),
            timezone: record.location.and_then(|l| l.time_zone),
        };
        (geo != Geo::default()).then_some(geo)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field<'a>(ua: &'a UserAgent, key: &str) -> Option<&'a str> {
        ua.fields
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn browsers_and_clients_parse_into_the_hosted_fields() {
        let chrome = parse_user_agent("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.109 Safari/537.36");
        assert_eq!(field(&chrome, "name"), Some("Chrome"));
        assert_eq!(field(&chrome, "major"), Some("120"));
        assert_eq!(field(&chrome, "minor"), Some("0"));
        assert_eq!(field(&chrome, "patch"), Some("6099"));
        assert_eq!(field(&chrome, "os"), Some("Mac OS X"));
        assert_eq!(field(&chrome, "os_name"), Some("Mac OS X"));
        assert_eq!(field(&chrome, "os_version"), Some("10.15.7"));
        assert_eq!(field(&chrome, "os_full"), Some("Mac OS X 10.15.7"));
        assert_eq!(field(&chrome, "os_major"), Some("10"));
        assert_eq!(field(&chrome, "device"), Some("Mac"));
        let keys: Vec<&str> = chrome.fields.iter().map(|(k, _)| *k).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted, "written in key order");

        let iphone = parse_user_agent("Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1");
        assert_eq!(field(&iphone, "name"), Some("Mobile Safari"));
        assert_eq!(field(&iphone, "os"), Some("iOS"));
        assert_eq!(field(&iphone, "device"), Some("iPhone"));

        let tool = parse_user_agent("python-requests/2.31.0");
        assert_eq!(field(&tool, "name"), Some("Python Requests"));
        assert_eq!(field(&tool, "os"), Some("Other"));
        assert_eq!(field(&tool, "device"), Some("Other"));

        let nothing = parse_user_agent("");
        assert_eq!(field(&nothing, "name"), Some("Other"));
        assert_eq!(field(&nothing, "version"), None);
    }

    #[test]
    fn a_cached_agent_is_the_parsed_one() {
        let header = "curl/8.5.0";
        assert_eq!(*user_agent(header), parse_user_agent(header));
        assert!(Arc::ptr_eq(&user_agent(header), &user_agent(header)));
    }

    #[test]
    fn a_file_that_is_no_database_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("geo.mmdb");
        std::fs::write(&path, b"not a database").unwrap();
        let e = GeoIp::open(&path).unwrap_err();
        assert!(e.contains("geo.mmdb"), "{e}");
    }
}
