// Package sovereigntest runs the proxy against sovereign-cloud authority hosts (login.microsoftonline.us,
// login.chinacloudapi.cn) served by the emulator. Those names must reach a local server, so its test binary
// routes every non-loopback HTTPS call through a CONNECT proxy of its own (HTTPS_PROXY, which the proxy's HTTP
// client honours): a setting no other test binary may share, hence a package of its own. It has no code
// besides its tests.
package sovereigntest
