//! A fixture repository with known defects, built in a temporary directory
//! so file modes are exactly what the tests say.

#![allow(dead_code, clippy::unwrap_used)]

use std::fs;
use std::path::Path;

/// Every section any built-in pack requires.
pub const ALL_SECTIONS: [&str; 10] = [
    "Context",
    "Scope",
    "Risk Assessment",
    "Security Considerations",
    "Sub-tasks",
    "Verification",
    "Rollback",
    "Observability",
    "Audit Notes",
    "Definition of Done",
];

pub fn write(root: &Path, relative: &str, text: &str) {
    let path = root.join(relative);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

pub fn executable(root: &Path, relative: &str, yes: bool) {
    use std::os::unix::fs::PermissionsExt;
    write(root, relative, "#!/bin/sh\nexit 0\n");
    let mode = if yes { 0o755 } else { 0o644 };
    fs::set_permissions(root.join(relative), fs::Permissions::from_mode(mode)).unwrap();
}

pub fn complete_step(title: &str) -> String {
    let mut text = format!("# {title}\n\n");
    for section in ALL_SECTIONS {
        text.push_str(&format!("## {section}\n\nWritten.\n\n"));
    }
    text
}

/// The defects: run `0001-feature` lacks `log.md`; its step `02-implement.md`
/// has only `Sub-tasks` and `Verification:`; its plan names
/// `03-verify.md`, which does not exist; `scripts/ci/lint.sh` is not
/// executable; `typecheck.sh`, `build.sh` and `security.sh` are missing.
/// Run `0002-bugfix` is complete.
pub fn defective_repo(root: &Path) {
    executable(root, "scripts/ci/test.sh", true);
    executable(root, "scripts/ci/lint.sh", false);
    write(
        root,
        ".protocols/0001-feature/plan.md",
        "# Plan\n\n1. [Set up](01-setup.md)\n2. `02-implement.md`\n3. [Verify](./03-verify.md)\n",
    );
    write(root, ".protocols/0001-feature/context.md", "# Context\n");
    write(root, ".protocols/0001-feature/01-setup.md", &complete_step("Set up"));
    write(
        root,
        ".protocols/0001-feature/02-implement.md",
        "# Implement\n\n## Sub-tasks\n\n- a\n\n### verification:\n\nok\n",
    );
    write(root, ".protocols/0002-bugfix/plan.md", "# Plan\n\n- `01-fix.md`\n");
    write(root, ".protocols/0002-bugfix/context.md", "# Context\n");
    write(root, ".protocols/0002-bugfix/log.md", "# Log\n");
    write(root, ".protocols/0002-bugfix/01-fix.md", &complete_step("Fix"));
}

/// Fixes every file defect of [`defective_repo`].
pub fn fix_repo(root: &Path) {
    write(root, ".protocols/0001-feature/log.md", "# Log\n");
    write(root, ".protocols/0001-feature/02-implement.md", &complete_step("Implement"));
    write(root, ".protocols/0001-feature/03-verify.md", &complete_step("Verify"));
    for check in ["lint", "typecheck", "build", "security"] {
        executable(root, &format!("scripts/ci/{check}.sh"), true);
    }
}
