//! Rebuilds the crate when a template is added or changed: they are embedded with
//! `include_dir!`, which cannot tell cargo about new files itself.

fn main() {
    println!("cargo::rerun-if-changed=../templates");
}
