#![no_main]
libfuzzer_sys::fuzz_target!(|text: &str| {
    let _ = revocd::config::Config::parse(std::path::Path::new("/etc/revocd/revocd.toml"), text);
});
