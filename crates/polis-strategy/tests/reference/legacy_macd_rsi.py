"""legacy_macd_rsi@1.0.0 written again on TA-Lib's own MACD and RSI (pandas +
the ta-lib package), independent of polis: prints `YYYY-MM-DD Direction` per
intent on GOOG.csv, for the golden list's cross-check in tests/replay.rs."""
import pandas as pd, talib, numpy as np, backtesting, os
df=pd.read_csv(os.path.join(os.path.dirname(backtesting.__file__),'test','GOOG.csv'),index_col=0)
c=df.Close.values.astype(float)
m,s,h=talib.MACD(c,12,26,9); r=talib.RSI(c,14)
long=False; prev=None; out=[]
for i in range(len(c)):
    if np.isnan(m[i]): continue
    d=m[i]-s[i]
    if prev is None: prev=d; continue
    if i < 34: prev=d; continue   # warm-up: bars 0..33 consumed
    if prev<=0 and d>0 and r[i]<70 and not long: long=True; out.append((df.index[i],'Long'))
    elif prev>=0 and d<0 and r[i]>30 and long: long=False; out.append((df.index[i],'Flat'))
    prev=d
for o in out: print(o[0],o[1])
