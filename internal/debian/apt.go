package debian

import "fmt"

// AptConfig is the configuration of a private apt (APT_CONFIG) whose state, package
// lists, status, sources and preferences all live under root, so that nothing of the
// machine's own apt set-up (its sources, pins, configuration snippets, installed
// packages) takes part: root/sources.list, root/status and root/preferences are the
// caller's, root/state, root/cache, root/log and an empty root/empty must exist. arch
// is the only architecture; downloaded .debs go to archives. Recommends and Suggests are
// off, as in every build. The builder resolves and downloads with it, and the checker's
// cross-check against apt uses it, so the two cannot drift apart.
func AptConfig(root, arch, archives string) string {
	return fmt.Sprintf(`Dir::State "%[1]s/state";
Dir::State::status "%[1]s/status";
Dir::Cache "%[1]s/cache";
Dir::Cache::archives "%[3]s";
Dir::Etc::sourcelist "%[1]s/sources.list";
Dir::Etc::sourceparts "%[1]s/empty";
Dir::Etc::preferences "%[1]s/preferences";
Dir::Etc::preferencesparts "%[1]s/empty";
Dir::Etc::parts "%[1]s/empty";
Dir::Etc::trustedparts "%[1]s/empty";
Dir::Log "%[1]s/log";
APT::Architecture "%[2]s";
APT::Architectures { "%[2]s"; };
APT::Install-Recommends "false";
APT::Install-Suggests "false";
APT::Sandbox::User "root";
Acquire::Languages "none";
Acquire::Retries "3";
Debug::NoLocking "true";
`, root, arch, archives)
}
