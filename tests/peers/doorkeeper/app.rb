# frozen_string_literal: true

# A real Doorkeeper 5.5 configured as Kit's OAuth server appears to be: the peer that the
# differential suite holds kit-sandbox to, and that the client and broker run against in CI.
# One file, Debian's packages only (RubyGems is not reachable here): `ruby app.rb`.
#
# Environment:
#   PORT            port to listen on, on 127.0.0.1 (required)
#   ROTATION        revoke-on-use (tokens table WITH previous_refresh_token, Doorkeeper's
#                   default: the old refresh token lives until the new access token is used) or
#                   strict (WITHOUT the column: the old refresh token dies at once)
#   ACCESS_TTL      access-token lifetime in seconds (default 7200)
#   CLIENT_ID, CLIENT_SECRET, REDIRECT_URI   the one confidential client (scope `public`)
#   ACCOUNT_NAME    the always-signed-in creator's account name
#   DATABASE        SQLite file (default: a fresh one in a temporary directory, removed at exit)
#
# Routes: /v4/oauth/* and /oauth/* (Doorkeeper's), GET /v4/account (Kit-shaped, guarded by
# doorkeeper_authorize!), and GET /__test/stats — the token grants Doorkeeper answered with
# success, counted by its own after_successful_strategy_response hook, and the token endpoint's
# refusals by `error`, so a suite can count refreshes and invalid_grants exactly.

require "tmpdir"
require "fileutils"
require "json"
require "logger"
require "rails"
require "active_record/railtie"
require "action_controller/railtie"
require "action_view/railtie"
require "sqlite3"
require "doorkeeper"

PORT = Integer(ENV.fetch("PORT"))
ROTATION = ENV.fetch("ROTATION", "revoke-on-use")
unless %w[revoke-on-use strict].include?(ROTATION)
  abort "ROTATION must be revoke-on-use or strict, not #{ROTATION.inspect}"
end
ACCESS_TTL = Integer(ENV.fetch("ACCESS_TTL", "7200"))
CLIENT_ID = ENV.fetch("CLIENT_ID", "kit-oauth-tests")
CLIENT_SECRET = ENV.fetch("CLIENT_SECRET", "doorkeeper-client-secret")
REDIRECT_URI = ENV.fetch("REDIRECT_URI", "http://127.0.0.1:9/kit/oauth/callback")
ACCOUNT_NAME = ENV.fetch("ACCOUNT_NAME", "Doorkeeper Creator")
WORK_DIR = Dir.mktmpdir("doorkeeper-peer")
at_exit { FileUtils.rm_rf(WORK_DIR) }
DATABASE = ENV.fetch("DATABASE") { File.join(WORK_DIR, "peer.sqlite3") }

# Rails reads its database from here (there is no config/database.yml).
ENV["DATABASE_URL"] = "sqlite3:#{DATABASE}"

# The creator who is always signed in: Kit's consent page is not what is under test.
TestUser = Struct.new(:id, :email)
TEST_USER = TestUser.new(1, "creator@example.com")

# Successful grants by kind, and the token endpoint's refusals by `error`, counted in-process
# (Puma runs one worker).
GRANTS = Hash.new(0)
TOKEN_ERRORS = Hash.new(0)
GRANTS_LOCK = Mutex.new

# Counts the token endpoint's error answers by their `error` code: Doorkeeper has a hook for
# successes only.
class TokenErrorCounter
  def initialize(app)
    @app = app
  end

  def call(env)
    status, headers, body = @app.call(env)
    return [status, headers, body] unless status >= 400 && env["PATH_INFO"].to_s.end_with?("/oauth/token")

    text = +""
    body.each { |chunk| text << chunk }
    body.close if body.respond_to?(:close)
    code = begin
      JSON.parse(text)["error"] || "none"
    rescue JSON::ParserError
      "none"
    end
    GRANTS_LOCK.synchronize { TOKEN_ERRORS[code] += 1 }
    [status, headers, [text]]
  end
end

class PeerApp < Rails::Application
  config.load_defaults 6.1
  config.root = __dir__
  config.eager_load = false
  config.cache_classes = true
  # Errors are rendered as in production: a malformed JSON body is a bare 400.
  config.consider_all_requests_local = false
  config.action_dispatch.show_exceptions = true
  # No public/400.html: the 400 is empty, as Rails renders it without one.
  config.paths["public"] = File.join(WORK_DIR, "public")
  config.secret_key_base = "doorkeeper-peer-for-tests-only-#{"0" * 64}"
  config.hosts.clear
  config.logger = Logger.new($stderr, level: Logger::WARN)
  config.log_level = :warn
  config.middleware.insert_before 0, TokenErrorCounter
end

ActiveRecord::Base.establish_connection(
  adapter: "sqlite3",
  database: DATABASE,
  pool: 5,
  timeout: 5000
)
ActiveRecord::Migration.verbose = false

# Doorkeeper's install migration (the generator's template), with previous_refresh_token only in
# revoke-on-use: Doorkeeper chooses its rotation by that column's presence.
ActiveRecord::Schema.define do
  create_table :oauth_applications, force: true do |t|
    t.string :name, null: false
    t.string :uid, null: false
    t.string :secret, null: false
    t.text :redirect_uri, null: false
    t.string :scopes, null: false, default: ""
    t.boolean :confidential, null: false, default: true
    t.timestamps null: false
  end
  add_index :oauth_applications, :uid, unique: true

  create_table :oauth_access_grants, force: true do |t|
    t.references :resource_owner, null: false
    t.references :application, null: false
    t.string :token, null: false
    t.integer :expires_in, null: false
    t.text :redirect_uri, null: false
    t.datetime :created_at, null: false
    t.datetime :revoked_at
    t.string :scopes, null: false, default: ""
    t.string :code_challenge
    t.string :code_challenge_method
  end
  add_index :oauth_access_grants, :token, unique: true

  create_table :oauth_access_tokens, force: true do |t|
    t.references :resource_owner, index: true
    t.references :application, null: false
    t.string :token, null: false
    t.string :refresh_token
    t.integer :expires_in
    t.datetime :revoked_at
    t.datetime :created_at, null: false
    t.string :scopes
    t.string :previous_refresh_token, null: false, default: "" if ROTATION == "revoke-on-use"
  end
  add_index :oauth_access_tokens, :token, unique: true
  add_index :oauth_access_tokens, :refresh_token, unique: true
end

Doorkeeper.configure do
  orm :active_record
  resource_owner_authenticator { TEST_USER }
  skip_authorization { true }
  use_refresh_token
  access_token_expires_in ACCESS_TTL
  default_scopes :public
  grant_flows %w[authorization_code]
  force_ssl_in_redirect_uri false
  after_successful_strategy_response do |request, _response|
    kind = case request
           when Doorkeeper::OAuth::RefreshTokenRequest then "refresh_token"
           when Doorkeeper::OAuth::AuthorizationCodeRequest then "authorization_code"
           else request.class.name
           end
    GRANTS_LOCK.synchronize { GRANTS[kind] += 1 }
  end
end

class AccountController < ActionController::API
  before_action :doorkeeper_authorize!

  def show
    render json: {
      user: { email: TEST_USER.email, id: TEST_USER.id },
      account: {
        id: 1,
        name: ACCOUNT_NAME,
        plan_type: "creator",
        primary_email_address: TEST_USER.email,
        created_at: "2023-02-17T11:43:55Z",
        timezone: {
          name: "America/New_York",
          friendly_name: "Eastern Time (US & Canada)",
          utc_offset: "-05:00",
        },
      },
    }
  end

  private

  # Kit's 401 body: {"errors":[…]} with Doorkeeper's own message.
  def doorkeeper_unauthorized_render_options(error: nil)
    { json: { errors: [error&.description].compact } }
  end
end

class TestStatsController < ActionController::API
  def show
    grants, errors = GRANTS_LOCK.synchronize { [GRANTS.dup, TOKEN_ERRORS.dup] }
    render json: { grants: grants, token_errors: errors, rotation: ROTATION, access_ttl: ACCESS_TTL }
  end
end

PeerApp.initialize!

PeerApp.routes.draw do
  scope "v4", as: "v4" do
    use_doorkeeper
  end
  use_doorkeeper
  get "/v4/account", to: "account#show"
  get "/__test/stats", to: "test_stats#show"
end

Doorkeeper::Application.create!(
  name: "kit-oauth tests",
  uid: CLIENT_ID,
  secret: CLIENT_SECRET,
  redirect_uri: REDIRECT_URI,
  scopes: "public",
  confidential: true
)

# A test process that ends without stopping its peer (a peer shared in a static, a panic,
# SIGKILL) must not leave it running: the peer stops, as on SIGTERM, when its parent is gone.
PARENT = Process.ppid
Thread.new do
  loop do
    sleep 0.5
    next if Process.ppid == PARENT

    Process.kill("TERM", Process.pid)
    break
  end
end

require "rack/handler/puma"
# One thread: requests are answered one at a time, so SQLite never reports "database is locked"
# and concurrent refreshes meet Doorkeeper's transaction in a serial order.
Rack::Handler::Puma.run(
  PeerApp,
  Host: "127.0.0.1",
  Port: PORT,
  Threads: "1:1",
  Silent: true
)
