package recipe

// BasePackages are the packages every image of a distribution gets, whatever the recipe
// says: they make it a bootable live system. The builder installs them and the objection
// checker checks them, from this one list.
func BasePackages(distribution string) []string {
	switch distribution {
	case "debian":
		return []string{"linux-image-amd64", "live-boot", "systemd-sysv"}
	}
	return nil
}

// ImpliedPackages are packages the recipe's settings need without naming them: locales
// for a locale other than C.UTF-8, sudo for a user with sudo rights. Call it on the
// effective recipe (layers composed).
func (r *Recipe) ImpliedPackages() []string {
	var out []string
	if r.Locale != "" && r.Locale != "C.UTF-8" {
		out = append(out, "locales")
	}
	for _, u := range r.Users {
		if u.Sudo {
			out = append(out, "sudo")
			break
		}
	}
	return out
}
