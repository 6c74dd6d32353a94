//! `alertbook.yaml`, the server's configuration: raw serde struct first, then
//! validated into [`Config`], every error located at `file:line:col`.
//!
//! ```yaml
//! catalog: catalog/busflow   # relative to this file
//! listen: 127.0.0.1:9099
//! data: ./data
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use catalog::{Diagnostic, Diagnostics, SourceFile};
use serde::Deserialize;
use serde_saphyr::Spanned;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:9099";
pub const DEFAULT_DATA: &str = "./data";
pub const DEFAULT_CATALOG: &str = "catalog/busflow";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    catalog: Option<Spanned<String>>,
    #[serde(default)]
    listen: Option<Spanned<String>>,
    #[serde(default)]
    data: Option<Spanned<String>>,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub catalog: PathBuf,
    pub listen: SocketAddr,
    pub data: PathBuf,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            catalog: PathBuf::from(DEFAULT_CATALOG),
            listen: DEFAULT_LISTEN.parse().expect("the default listen address is valid"),
            data: PathBuf::from(DEFAULT_DATA),
        }
    }
}

/// Reads and validates a configuration file.
pub fn load(path: &Path) -> Result<Config, Diagnostics> {
    let source = SourceFile::read(path).map_err(|diagnostic| Diagnostics(vec![diagnostic]))?;
    let raw: RawConfig = source.parse_yaml().map_err(|diagnostic| Diagnostics(vec![diagnostic]))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let mut errors: Vec<Diagnostic> = Vec::new();
    let mut config = Config::default();
    if let Some(listen) = &raw.listen {
        match listen.value.parse() {
            Ok(address) => config.listen = address,
            Err(_) => {
                errors.push(source.error_at_value(
                    listen,
                    format!("listen {:?} is not an address such as 127.0.0.1:9099", listen.value),
                ))
            }
        }
    }
    if let Some(catalog) = &raw.catalog {
        config.catalog = base.join(&catalog.value);
        if !config.catalog.join("catalog.yaml").is_file() {
            errors.push(source.error_at_value(
                catalog,
                format!("{} is not a catalog directory (no catalog.yaml)", config.catalog.display()),
            ));
        }
    }
    if let Some(data) = &raw.data {
        if data.value.is_empty() {
            errors.push(source.error_at_value(data, "data must name a directory"));
        }
        config.data = base.join(&data.value);
    }
    if errors.is_empty() { Ok(config) } else { Err(Diagnostics(errors)) }
}
