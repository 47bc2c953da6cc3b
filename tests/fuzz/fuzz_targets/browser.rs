//! The browser package's loader (model files and modules) against the
//! host's readers: `kiln::fuzzing::browser`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    kiln::fuzzing::browser(data, |bytes| {
        kiln_browser::load(bytes, "fuzz")
            .map(|l| l.model)
            .map_err(|e| e.to_string())
    })
});
