using System.Security.Cryptography;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using System.Xml.Linq;
using CmpWaldurAdapter.Cli;
using CmpWaldurAdapter.Hosting;
using CmpWaldurAdapter.KeyRing;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Provisioning;
using CmpWaldurAdapter.Testing.Fakes;
using CmpWaldurAdapter.Testing.Hosting;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.DataProtection.KeyManagement;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Serilog.Core;

namespace CmpWaldurAdapter.IntegrationTests.Persistence;

/// <summary>
/// The Data Protection key ring lives in the adapter's database, beside the credentials its keys encrypt: each key is
/// stored encrypted with a key-encryption key held outside the database, so a dump or a read-only role decrypts
/// nothing. Proven on PostgreSQL, where production keeps it.
/// </summary>
public sealed class KeyRingEncryptionTests : IAsyncLifetime
{
    private static readonly string OtherKeyEncryptionKey = TestSecrets.Register(Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)), "another key-encryption key");

    private readonly WaldurFake _waldur = new();
    private TestDatabase _database = null!;

    public async Task InitializeAsync() => _database = await TestDatabase.CreateAsync(DatabaseProvider.Postgres);

    public async Task DisposeAsync()
    {
        _waldur.Dispose();
        await _database.DisposeAsync();
    }

    [Fact]
    public async Task The_stored_key_ring_holds_no_plaintext_master_key_and_only_the_same_key_encryption_key_reads_what_it_protected()
    {
        const string password = "langflow-password-of-a-tenant";
        string cipher;
        using (var first = await StartAsync(TestDatabase.KeyEncryptionKey))
        {
            cipher = Credentials(first).Protect(password);
        }

        var stored = await StoredKeysAsync();
        var key = Assert.Single(stored);
        Assert.DoesNotContain(key.Descendants(), e => e.Name.LocalName == "masterKey");
        var secret = Assert.Single(key.Descendants(), e => e.Name.LocalName == "encryptedSecret");
        Assert.Equal(typeof(KeyRingXmlDecryptor).FullName, ((string?)secret.Attribute("decryptorType"))?.Split(',')[0]);
        var encrypted = Assert.Single(secret.Elements(), e => e.Name.LocalName == "kekEncryptedKey");
        Assert.Equal(KeyEncryptionKey.Parse(TestDatabase.KeyEncryptionKey)!.Id, (string?)encrypted.Attribute("kekId"));
        Assert.Equal(12, Convert.FromBase64String((string)encrypted.Attribute("nonce")!).Length);
        Assert.Equal(16, Convert.FromBase64String((string)encrypted.Attribute("tag")!).Length);

        using (var same = await StartAsync(TestDatabase.KeyEncryptionKey))
        {
            Assert.Equal(password, Credentials(same).Unprotect(cipher));
        }

        using (var other = await StartAsync(OtherKeyEncryptionKey))
        {
            Assert.ThrowsAny<CryptographicException>(() => Credentials(other).Unprotect(cipher));
        }
    }

    [Fact]
    public async Task After_rotation_the_previous_key_encryption_key_still_reads_the_old_keys_and_new_keys_are_encrypted_with_the_new_one()
    {
        const string password = "langflow-password-before-rotation";
        string before;
        using (var old = await StartAsync(TestDatabase.KeyEncryptionKey))
        {
            before = Credentials(old).Protect(password);
        }

        using (var rotated = await StartAsync(OtherKeyEncryptionKey, previous: TestDatabase.KeyEncryptionKey))
        {
            Assert.Equal(password, Credentials(rotated).Unprotect(before));

            // A key made now (as the ring makes one before the old expires) is encrypted with the new key alone.
            var now = DateTimeOffset.UtcNow;
            rotated.Services.GetRequiredService<IKeyManager>().CreateNewKey(now, now.AddDays(90));
        }

        var ids = (await StoredKeysAsync())
            .Select(k => (string?)k.Descendants().Single(e => e.Name.LocalName == "kekEncryptedKey").Attribute("kekId"))
            .ToList();
        // The key made before the rotation keeps the old key-encryption key; every key made since has the new one.
        var oldId = KeyEncryptionKey.Parse(TestDatabase.KeyEncryptionKey)!.Id;
        var newId = KeyEncryptionKey.Parse(OtherKeyEncryptionKey)!.Id;
        Assert.Equal(1, ids.Count(id => id == oldId));
        Assert.Contains(newId, ids);
        Assert.All(ids, id => Assert.True(id == oldId || id == newId, $"kekId {id} is neither key-encryption key"));

        // Without the previous key the old key's values are unreadable, while the new key serves: no key is added.
        using (var only = await StartAsync(OtherKeyEncryptionKey))
        {
            Assert.ThrowsAny<CryptographicException>(() => Credentials(only).Unprotect(before));
            Assert.Equal(password, Credentials(only).Unprotect(Credentials(only).Protect(password)));
        }

        Assert.Equal(ids.Count, (await StoredKeysAsync()).Count);
    }

    /// <summary><c>serve</c> on PostgreSQL without a key-encryption key stops before serving, saying how to make one.</summary>
    [Fact]
    public async Task Serve_on_postgres_without_a_key_encryption_key_refuses_to_start_naming_the_option_unless_told_to_allow_it()
    {
        var settings = Settings(key: null);
        var error = new StringWriter();
        var context = new CommandContext(new StringWriter(), error, configureServer: builder =>
        {
            builder.Configuration.AddInMemoryCollection(settings);
            builder.Services.AddSingleton<ILogEventSink>(new CapturedLogs());
        });

        var exitCode = await AdapterCli.RunAsync(["serve", "--urls", $"http://127.0.0.1:{LoopbackPorts.Free()}"], context).WaitAsync(TimeSpan.FromSeconds(60));

        Assert.Equal(ExitCodes.Error, exitCode);
        Assert.Contains("Configuration error", error.ToString(), StringComparison.Ordinal);
        Assert.Contains("DataProtection:KeyEncryptionKey is required with Database:Provider=Postgres", error.ToString(), StringComparison.Ordinal);
        Assert.Contains("openssl rand -base64 32", error.ToString(), StringComparison.Ordinal);
        Assert.Contains("DataProtection:AllowUnencryptedKeyRing", error.ToString(), StringComparison.Ordinal);

        // The explicit opt-out starts, with the key ring stored as before and a warning.
        settings["DataProtection:AllowUnencryptedKeyRing"] = "true";
        var logs = new CapturedLogs();
        using (var optedOut = await AdapterTestHost.StartServicesAsync(settings, logs))
        {
            Credentials(optedOut).Protect("anything");
        }

        Assert.Contains("masterKey", (await StoredKeysAsync()).Single().ToString(), StringComparison.Ordinal);
    }

    /// <summary>
    /// Keys the ring made before a key-encryption key was set hold their master key in plaintext; <c>db rewrap-key-ring</c>
    /// encrypts them in place, so the values they protected stay readable with the key-encryption key alone.
    /// </summary>
    [Fact]
    public async Task Rewrap_encrypts_plaintext_keys_of_a_ring_made_without_a_key_encryption_key_and_what_they_protected_still_reads()
    {
        const string password = "langflow-password-from-before-the-key-encryption-key";
        string before;
        using (var unencrypted = await StartUnencryptedAsync())
        {
            before = Credentials(unencrypted).Protect(password);
        }

        var masterKey = (string)Assert.Single((await StoredKeysAsync()).Single().Descendants(), e => e.Name.LocalName == "masterKey").Element(Value)!;

        var (exit, output, error, logs) = await RewrapAsync(Settings(TestDatabase.KeyEncryptionKey));

        Assert.True(exit == ExitCodes.Success, error);
        Assert.Contains("re-wrapped 1 from plaintext, 0 from a previous key-encryption key; 0 already current", output, StringComparison.Ordinal);
        var stored = Assert.Single(await StoredRowsAsync()).Value;
        Assert.DoesNotContain("masterKey", stored, StringComparison.Ordinal);
        Assert.DoesNotContain(masterKey, stored, StringComparison.Ordinal);
        Assert.Equal([KeyEncryptionKey.Parse(TestDatabase.KeyEncryptionKey)!.Id], KekIds(XElement.Parse(stored)));
        Assert.All((string[])[output, error, .. logs], line => Assert.DoesNotContain(masterKey, line, StringComparison.Ordinal));
        Assert.Empty(TestSecrets.FoundIn([output, error, .. logs]));

        using (var encrypted = await StartAsync(TestDatabase.KeyEncryptionKey))
        {
            Assert.Equal(password, Credentials(encrypted).Unprotect(before));
        }

        Assert.Single(await StoredRowsAsync()); // the re-wrapped key still serves: the ring made no new one
    }

    /// <summary>The same on SQLite, the embedded default, where a key-encryption key is optional.</summary>
    [Fact]
    public async Task Rewrap_encrypts_plaintext_keys_on_sqlite_too()
    {
        const string password = "langflow-password-on-sqlite";
        await using var sqlite = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        var settings = AdapterTestHost.Settings(_waldur, sqlite);
        settings["DataProtection:KeyEncryptionKey"] = null;
        string before;
        using (var unencrypted = await AdapterTestHost.StartServicesAsync(settings))
        {
            before = Credentials(unencrypted).Protect(password);
        }

        settings["DataProtection:KeyEncryptionKey"] = TestDatabase.KeyEncryptionKey;
        var first = await RewrapAsync(settings);
        var second = await RewrapAsync(settings);

        Assert.True(first.Exit == ExitCodes.Success, first.Error);
        Assert.Contains("re-wrapped 1 from plaintext", first.Output, StringComparison.Ordinal);
        Assert.True(second.Exit == ExitCodes.Success, second.Error);
        Assert.Contains("re-wrapped 0 from plaintext, 0 from a previous key-encryption key; 1 already current", second.Output, StringComparison.Ordinal);
        using var encrypted = await AdapterTestHost.StartServicesAsync(settings);
        await using (var db = await encrypted.Services.GetRequiredService<IDbContextFactory<AdapterDbContext>>().CreateDbContextAsync())
        {
            Assert.DoesNotContain("masterKey", Assert.Single(await db.DataProtectionKeys.AsNoTracking().ToListAsync()).Xml, StringComparison.Ordinal);
        }

        Assert.Equal(password, Credentials(encrypted).Unprotect(before));
    }

    /// <summary>After <c>db rewrap-key-ring</c> under the new key-encryption key, the old one can be removed.</summary>
    [Fact]
    public async Task After_rotation_rewrap_moves_every_key_to_the_new_key_encryption_key_and_the_old_one_is_no_longer_needed()
    {
        const string password = "langflow-password-before-rotation";
        string before;
        using (var old = await StartAsync(TestDatabase.KeyEncryptionKey))
        {
            before = Credentials(old).Protect(password);
        }

        var (exit, output, error, _) = await RewrapAsync(Settings(OtherKeyEncryptionKey, previous: TestDatabase.KeyEncryptionKey));

        Assert.True(exit == ExitCodes.Success, error);
        Assert.Contains("re-wrapped 0 from plaintext, 1 from a previous key-encryption key; 0 already current", output, StringComparison.Ordinal);
        var newId = KeyEncryptionKey.Parse(OtherKeyEncryptionKey)!.Id;
        Assert.All(await StoredKeysAsync(), key => Assert.Equal([newId], KekIds(key)));

        using (var only = await StartAsync(OtherKeyEncryptionKey))
        {
            Assert.Equal(password, Credentials(only).Unprotect(before));
        }
    }

    /// <summary>A second run finds every key current and writes nothing: the rows stay byte for byte as the first run left them.</summary>
    [Fact]
    public async Task Rewrap_run_twice_changes_nothing_the_second_time()
    {
        using (var unencrypted = await StartUnencryptedAsync())
        {
            Credentials(unencrypted).Protect("anything");
        }

        using (var old = await StartAsync(TestDatabase.KeyEncryptionKey))
        {
            var now = DateTimeOffset.UtcNow;
            old.Services.GetRequiredService<IKeyManager>().CreateNewKey(now, now.AddDays(90));
        }

        var settings = Settings(OtherKeyEncryptionKey, previous: TestDatabase.KeyEncryptionKey);
        var first = await RewrapAsync(settings);
        Assert.True(first.Exit == ExitCodes.Success, first.Error);
        Assert.Contains("re-wrapped 1 from plaintext, 1 from a previous key-encryption key; 0 already current", first.Output, StringComparison.Ordinal);
        var afterFirst = await StoredRowsAsync();

        var second = await RewrapAsync(settings, "--output", "json");

        Assert.True(second.Exit == ExitCodes.Success, second.Error);
        var json = JsonNode.Parse(second.Output)!;
        Assert.Equal(0, (int)json["fromPlaintext"]!);
        Assert.Equal(0, (int)json["fromPreviousKeyEncryptionKey"]!);
        Assert.Equal(2, (int)json["alreadyCurrent"]!);
        Assert.Empty(json["failed"]!.AsArray());
        Assert.Equal(afterFirst, await StoredRowsAsync());
    }

    /// <summary>A key under a key-encryption key no longer configured is named and left as it was; the rest are re-wrapped.</summary>
    [Fact]
    public async Task Rewrap_of_a_key_under_an_unknown_key_encryption_key_exits_2_naming_the_key_and_leaves_its_row_unchanged()
    {
        using (var unknown = await StartAsync(OtherKeyEncryptionKey))
        {
            Credentials(unknown).Protect("anything");
        }

        var (row, xml) = Assert.Single(await StoredRowsAsync());
        var keyId = (string)XElement.Parse(xml).Attribute("id")!;

        var (exit, output, error, logs) = await RewrapAsync(Settings(TestDatabase.KeyEncryptionKey));

        Assert.Equal(ExitCodes.Error, exit);
        Assert.Contains($"key {keyId} was left unchanged", error, StringComparison.Ordinal);
        Assert.Contains(KeyEncryptionKey.Parse(OtherKeyEncryptionKey)!.Id, error, StringComparison.Ordinal);
        Assert.Contains("0 already current", output, StringComparison.Ordinal);
        Assert.Equal(xml, (await StoredRowsAsync())[row]);
        Assert.Empty(TestSecrets.FoundIn([output, error, .. logs]));
    }

    /// <summary>
    /// A run writes a row only while it still holds what that run read: a run that read the plaintext key, then lost the
    /// race to another run, leaves the other's re-wrapped row as it is (and reads it again, finding it current).
    /// </summary>
    [Fact]
    public async Task Rewrap_writes_a_row_only_if_it_still_holds_what_was_read()
    {
        using (var unencrypted = await StartUnencryptedAsync())
        {
            Credentials(unencrypted).Protect("anything");
        }

        var (row, plaintext) = Assert.Single(await StoredRowsAsync());
        using var host = AdapterHost.BuildCommandHost(null, builder => builder.Configuration.AddInMemoryCollection(Settings(TestDatabase.KeyEncryptionKey)));
        var keys = KeyEncryptionKeys.From(host.Services.GetRequiredService<IOptions<KeyRingOptions>>().Value)!;
        var contexts = host.Services.GetRequiredService<IDbContextFactory<AdapterDbContext>>();
        var (read, stale) = new KeyRingRewrap(contexts, keys, host.Services).Rewrap(plaintext);
        Assert.Equal(RewrapOutcome.FromPlaintext, read.Outcome);

        var other = await RewrapAsync(Settings(TestDatabase.KeyEncryptionKey)); // the run that wins the race
        Assert.True(other.Exit == ExitCodes.Success, other.Error);
        var winner = (await StoredRowsAsync())[row];

        await using (var db = await contexts.CreateDbContextAsync())
        {
            Assert.False(await KeyRingRewrap.TryReplaceAsync(db, row, plaintext, stale!, CancellationToken.None));
        }

        Assert.Equal(winner, (await StoredRowsAsync())[row]);
    }

    /// <summary>
    /// A row that another writer changes before every one of a run's writes (it reads the row again each time, three times)
    /// is left as that writer left it: the key is named as changing under every attempt, the other keys are re-wrapped,
    /// and the command exits 2 asking for another run, which then re-wraps it.
    /// </summary>
    [Fact]
    public async Task Rewrap_of_a_row_that_changes_under_every_attempt_leaves_it_to_the_next_run_and_exits_2_naming_the_key()
    {
        using (var unencrypted = await StartUnencryptedAsync())
        {
            Credentials(unencrypted).Protect("anything");
        }

        var (row, plaintext) = Assert.Single(await StoredRowsAsync());
        var keyId = (string)XElement.Parse(plaintext).Attribute("id")!;
        var otherWrites = 0;
        // Another writer's change: the same key, still in plaintext, with a note that makes each version differ.
        var otherWriter = new BeforeStatement().Stage(new Regex("""^\s*UPDATE "?data_protection_keys"?""", RegexOptions.IgnoreCase), async () =>
        {
            var changed = XElement.Parse(plaintext);
            changed.Add(new XComment($"another writer, change {++otherWrites}"));
            using var other = AdapterHost.BuildCommandHost(null, builder => builder.Configuration.AddInMemoryCollection(Settings(TestDatabase.KeyEncryptionKey)));
            await using var db = await other.Services.GetRequiredService<IDbContextFactory<AdapterDbContext>>().CreateDbContextAsync();
            await db.DataProtectionKeys.Where(k => k.Id == row).ExecuteUpdateAsync(set => set.SetProperty(k => k.Xml, changed.ToString(SaveOptions.DisableFormatting)));
        }, times: 3);

        var (exit, output, error, _) = await RewrapAsync(Settings(TestDatabase.KeyEncryptionKey), services => services.AddDatabaseInterceptor(DatabaseProvider.Postgres, otherWriter));

        Assert.Equal(3, otherWriter.Ran);
        Assert.Equal(ExitCodes.Error, exit);
        Assert.Contains("re-wrapped 0 from plaintext", output, StringComparison.Ordinal);
        var line = Assert.Single(error.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Equal($"rewrap-key-ring: key {keyId} was left unchanged: the row changed under every one of 3 attempts to re-wrap it; run the command again", line);
        var left = Assert.Single(await StoredRowsAsync()).Value;
        Assert.Contains("another writer, change 3", left, StringComparison.Ordinal);
        Assert.Contains("masterKey", left, StringComparison.Ordinal);

        var again = await RewrapAsync(Settings(TestDatabase.KeyEncryptionKey));

        Assert.True(again.Exit == ExitCodes.Success, again.Error);
        Assert.Contains("re-wrapped 1 from plaintext", again.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("masterKey", Assert.Single(await StoredRowsAsync()).Value, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Rewrap_without_a_key_encryption_key_exits_2_with_one_line_naming_the_option()
    {
        var (exit, output, error, _) = await RewrapAsync(Settings(key: null));

        Assert.Equal(ExitCodes.Error, exit);
        Assert.Empty(output);
        var line = Assert.Single(error.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith("rewrap-key-ring: DataProtection:KeyEncryptionKey is not set", line, StringComparison.Ordinal);
    }

    private static readonly XName Value = "value";

    private static List<string?> KekIds(XElement key) =>
        key.Descendants().Where(e => e.Name.LocalName == "kekEncryptedKey").Select(e => (string?)e.Attribute("kekId")).ToList();

    private Task<(int Exit, string Output, string Error, List<string> Logs)> RewrapAsync(Dictionary<string, string?> settings, params string[] options) =>
        RewrapAsync(settings, _ => { }, options);

    private async Task<(int Exit, string Output, string Error, List<string> Logs)> RewrapAsync(Dictionary<string, string?> settings, Action<IServiceCollection> services, params string[] options)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var logs = new CapturedLogs();
        var context = new CommandContext(output, error, builder =>
        {
            builder.Configuration.AddInMemoryCollection(settings);
            builder.Services.AddSingleton<ILogEventSink>(logs);
            services(builder.Services);
        });
        var exit = await AdapterCli.RunAsync(["db", "rewrap-key-ring", .. options], context);
        return (exit, output.ToString(), error.ToString(), logs.Lines.ToList());
    }

    private Task<IHost> StartUnencryptedAsync()
    {
        var settings = Settings(key: null);
        settings["DataProtection:AllowUnencryptedKeyRing"] = "true";
        return AdapterTestHost.StartServicesAsync(settings);
    }

    /// <summary>Each row's XML exactly as stored, by row id.</summary>
    private async Task<Dictionary<int, string>> StoredRowsAsync()
    {
        using var host = AdapterHost.BuildCommandHost(null, builder => builder.Configuration.AddInMemoryCollection(Settings(TestDatabase.KeyEncryptionKey)));
        await using var db = await host.Services.GetRequiredService<IDbContextFactory<AdapterDbContext>>().CreateDbContextAsync();
        return await db.DataProtectionKeys.AsNoTracking().ToDictionaryAsync(k => k.Id, k => k.Xml!);
    }

    private Dictionary<string, string?> Settings(string? key, string? previous = null)
    {
        var settings = AdapterTestHost.Settings(_waldur, _database);
        settings["DataProtection:KeyEncryptionKey"] = key;
        if (previous is not null)
        {
            settings["DataProtection:PreviousKeyEncryptionKeys:0"] = previous;
        }

        return settings;
    }

    private Task<IHost> StartAsync(string key, string? previous = null) => AdapterTestHost.StartServicesAsync(Settings(key, previous));

    private static UpstreamCredentials Credentials(IHost host) => new(host.Services.GetRequiredService<IDataProtectionProvider>());

    /// <summary>The rows as stored, read by a host that is not started: a started one loads the ring, and may add a key to it.</summary>
    private async Task<List<XElement>> StoredKeysAsync()
    {
        using var host = AdapterHost.BuildCommandHost(null, builder => builder.Configuration.AddInMemoryCollection(Settings(TestDatabase.KeyEncryptionKey)));
        await using var db = await host.Services.GetRequiredService<IDbContextFactory<AdapterDbContext>>().CreateDbContextAsync();
        return (await db.DataProtectionKeys.AsNoTracking().ToListAsync()).Select(k => XElement.Parse(k.Xml!)).ToList();
    }
}
