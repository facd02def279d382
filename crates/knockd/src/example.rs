//! The built-in example configuration used by the quick start.

/// The text of the built-in example configuration.
pub const EXAMPLE_CONFIG: &str = include_str!("example.conf");

/// The name under which the example appears in messages.
pub const EXAMPLE_NAME: &str = "<built-in example>";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_parses_and_has_one_door() {
        let c = knock_core::config::parse(EXAMPLE_CONFIG, EXAMPLE_NAME).unwrap();
        assert_eq!(c.doors.len(), 1);
        assert_eq!(c.options.interface.as_deref(), Some("lo"));
        assert!(c.doors[0].start_command.is_some());
    }
}
