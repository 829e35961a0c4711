// This file exists so the crate can be a build-dependency of `netfwd`, which
// makes cargo rebuild the eBPF object when anything here changes.
#![no_std]
