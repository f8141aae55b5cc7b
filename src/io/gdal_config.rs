//! GDAL's process-wide settings that idfcr chooses before any I/O (a
//! user's environment or `--config` wins): a block cache that does not
//! grow with the machine, and JPEG damage as a read error.

/// `--config KEY VALUE`: set a GDAL configuration option for this process
/// (the message says why GDAL refused it).
pub fn set_user_option(key: &str, value: &str) -> Result<(), String> {
    gdal::config::set_config_option(key, value).map_err(|e| e.to_string())
}

/// Both of idfcr's GDAL settings, where the user set neither: called at
/// the top of every library entry point that reads rasters (`remove`,
/// `batch`, `s2`, `eval`, `quality`), before its first read, so library
/// callers get what the CLI gets. Once per process: a caller's own later
/// settings (`GDALSetCacheMax64`) stand.
pub fn defaults() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        limit_gdal_cache();
        strict_jpeg_reads();
    });
}

/// GDAL's block cache defaults to 5 % of RAM, which would make memory grow
/// with the machine rather than with our panels. Writes go to an
/// uncompressed working file (blocks updated in place), so a small cache
/// suffices. GDAL_CACHEMAX from the environment or --config still wins.
/// GDAL reads that option once, at its first cache use (a creation-option
/// check or the input's statistics come before the output), so setting the
/// option alone came too late: the cache's size is set directly. Called by
/// the CLI once `--config` is applied, and by `defaults` for library callers.
pub fn limit_gdal_cache() {
    const CACHE_BYTES: i64 = 64 << 20;
    if gdal::config::get_config_option("GDAL_CACHEMAX", "")
        .unwrap_or_default()
        .is_empty()
    {
        let _ = gdal::config::set_config_option("GDAL_CACHEMAX", "64");
        // SAFETY: a plain setter taking a byte count; GDAL guards its cache
        // with its own lock.
        unsafe { gdal_sys::GDALSetCacheMax64(CACHE_BYTES) };
    }
}

/// A JPEG that libjpeg can only partly decode (a truncated file, a damaged
/// tile of a JPEG-compressed GeoTIFF) is a read error, unless the user
/// says otherwise (`GDAL_ERROR_ON_LIBJPEG_WARNING` in the environment or
/// `--config`): GDAL's default is a warning and a grey fill, which ran
/// through the model and came out as a finished output with exit 0.
pub fn strict_jpeg_reads() {
    if gdal::config::get_config_option("GDAL_ERROR_ON_LIBJPEG_WARNING", "")
        .unwrap_or_default()
        .is_empty()
    {
        let _ = gdal::config::set_config_option("GDAL_ERROR_ON_LIBJPEG_WARNING", "TRUE");
    }
}

#[cfg(test)]
mod tests {
    /// The cache is capped at once, not when GDAL next reads its options
    /// (it had read them already: the cap did nothing).
    #[test]
    fn the_gdal_cache_is_capped_even_after_gdal_read_its_options() {
        if std::env::var_os("GDAL_CACHEMAX").is_some() {
            return; // the user's setting wins
        }
        // SAFETY: plain getters/setters of GDAL's global cache size.
        unsafe { gdal_sys::GDALGetCacheMax64() }; // GDAL reads its default now
        super::limit_gdal_cache();
        assert_eq!(unsafe { gdal_sys::GDALGetCacheMax64() }, 64 << 20);
    }
}
