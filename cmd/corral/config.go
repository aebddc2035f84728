package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/BurntSushi/toml"
)

// loadConfigFile decodes the TOML file at path into v (a struct with toml
// tags whose fields already hold the defaults). Keys the file sets that v
// does not define are an error naming every such key, so a typo never
// silently falls back to a default.
func loadConfigFile(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	return decodeConfig(path, string(data), v)
}

// sectionDecoder is a configuration with sections whose shape only a
// plug-in knows (the [runtime.<name>] sections, each decoded by its
// backend's factory). They are decoded into toml.Primitive first; then
// decodeSections decodes them with the file's MetaData, before unknown keys
// are looked for, so a key no plug-in took is named like any other.
type sectionDecoder interface {
	decodeSections(md toml.MetaData) error
}

func decodeConfig(name, text string, v any) error {
	md, err := toml.Decode(text, v)
	if err != nil {
		var perr toml.ParseError
		if errors.As(err, &perr) {
			return fmt.Errorf("config %s: line %d: %s", name, perr.Position.Line, perr.Message)
		}
		return fmt.Errorf("config %s: %w", name, err)
	}
	if sd, ok := v.(sectionDecoder); ok {
		if err := sd.decodeSections(md); err != nil {
			return fmt.Errorf("config %s: %w", name, err)
		}
	}
	if undecoded := md.Undecoded(); len(undecoded) > 0 {
		keys := make([]string, len(undecoded))
		for i, k := range undecoded {
			keys[i] = k.String()
		}
		return fmt.Errorf("config %s: unknown key(s) %s: check the spelling against the README's Configuration section",
			name, strings.Join(keys, ", "))
	}
	return nil
}
